"""The embedded named-entity data: deterministic, valid IOB2, varied, and not solvable by looking words up."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from nlp_template.data.samples.entities import EntitySamples
from nlp_template.metrics.entities import EntityF1, entity_spans

TYPES = {"PER", "ORG", "LOC"}


@pytest.fixture(scope="module")
def entities():
    return EntitySamples().load()


def test_deterministic_and_seeded():
    small = EntitySamples(num_train=50, num_validation=10, num_test=10)
    assert small.load()["train"].to_list() == small.load()["train"].to_list()
    assert EntitySamples(num_train=50, seed=7).load()["train"]["tokens"] != small.load()["train"]["tokens"]
    assert small.fingerprint() != EntitySamples(num_train=50, num_validation=10, num_test=10, seed=7).fingerprint()


def test_valid_iob2_and_varied(entities):
    assert [entities[split].num_rows for split in ("train", "validation", "test")] == [3000, 400, 600]
    train = entities["train"]
    kinds, lengths, empty = Counter(), Counter(), 0
    for tokens, tags in zip(train["tokens"], train["tags"], strict=True):
        assert len(tokens) == len(tags) > 0
        assert tokens[0][0].isupper()  # sentence case
        for previous, tag in zip(["O", *tags], tags, strict=False):
            assert tag == "O" or (tag[:2] in ("B-", "I-") and tag[2:] in TYPES)
            assert not tag.startswith("I-") or previous[2:] == tag[2:]  # IOB2: I-X only continues an X
        spans = entity_spans(tags)
        empty += not spans
        kinds.update(kind for kind, _, _ in spans)
        lengths.update(min(end - start, 3) for _, start, end in spans)
    assert set(kinds) == TYPES and min(kinds.values()) > 1000
    assert lengths[1] > 500 and lengths[2] > 500 and lengths[3] > 100  # one-, two- and three-word entities
    assert 100 < empty < 600  # some sentences mention no entity


def test_word_lookup_is_not_enough(entities):
    # The most frequent tag of each word in training, applied to the test split: context has to do the rest.
    counts = defaultdict(Counter)
    for tokens, tags in zip(entities["train"]["tokens"], entities["train"]["tags"], strict=True):
        for token, tag in zip(tokens, tags, strict=True):
            counts[token][tag] += 1
    ambiguous = {token for token, tags in counts.items() if len(tags) > 1}
    assert {"Kent", "Jordan", "May", "Mark", "Bath", "Morven"} <= ambiguous
    lookup = {token: tags.most_common(1)[0][0] for token, tags in counts.items()}
    test = entities["test"]
    word_f1 = _f1([[lookup.get(token, "O") for token in tokens] for tokens in test["tokens"]], test["tags"])
    # Kinder to the lookup: the most frequent type of each word, with B-/I- set from the word before.
    kinds = defaultdict(Counter)
    for token, tags in counts.items():
        for tag, count in tags.items():
            kinds[token][tag[2:] or "O"] += count
    kind = {token: counter.most_common(1)[0][0] for token, counter in kinds.items()}
    repaired = [_with_boundaries([kind.get(token, "O") for token in tokens]) for tokens in test["tokens"]]
    kind_f1 = _f1(repaired, test["tags"])
    print(f"word-lookup entity F1 on test: tag lookup {word_f1:.3f}, type lookup {kind_f1:.3f}")
    assert word_f1 < 0.7 and kind_f1 < 0.7


def _with_boundaries(kinds: list[str]) -> list[str]:
    return [k if k == "O" else ("I-" if i and kinds[i - 1] == k else "B-") + k for i, k in enumerate(kinds)]


def _f1(predictions: list[list[str]], targets: list[list[str]]) -> float:
    metric = EntityF1()
    metric.update(predictions, targets)
    return metric.compute()["f1"].item()
