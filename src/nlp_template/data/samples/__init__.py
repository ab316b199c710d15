"""The embedded data sets: generated on the fly, deterministic for a seed, no download (`conf/data/sample_*.yaml`).

Each is a source (`load()`, `fingerprint()`) built on `base.GeneratedSamples`; configs name them by the short path
`nlp_template.data.samples.<Class>`.
"""

from nlp_template.data.samples.choices import ChoiceSamples
from nlp_template.data.samples.entities import EntitySamples
from nlp_template.data.samples.instructions import InstructionSamples
from nlp_template.data.samples.pairs import PairSamples
from nlp_template.data.samples.qa import QASamples
from nlp_template.data.samples.reviews import ReviewSamples
from nlp_template.data.samples.sentiment import SentimentSamples
from nlp_template.data.samples.translation import TranslationSamples

__all__ = [
    "ChoiceSamples",
    "EntitySamples",
    "InstructionSamples",
    "PairSamples",
    "QASamples",
    "ReviewSamples",
    "SentimentSamples",
    "TranslationSamples",
]
