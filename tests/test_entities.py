"""Entity decoding (conlleval semantics), IOB1 conversion and the EntityF1 metric against seqeval."""

from __future__ import annotations

import random
import warnings

import pytest
import torch

from nlp_template.metrics.entities import EntityF1, entity_spans, iob1_to_iob2

TAGS = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        ([], set()),
        (["O", "O"], set()),
        (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),
        (["O", "I-LOC", "I-LOC"], {("LOC", 1, 3)}),  # I- after O starts a chunk
        (["I-PER"], {("PER", 0, 1)}),  # ... and so does I- at the start
        (["B-PER", "I-LOC", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 3)}),  # a type change ends one and starts another
        (["B-PER", "I-PER", "B-PER"], {("PER", 0, 2), ("PER", 2, 3)}),  # B- ends the chunk before
        (["B-ORG", "I-ORG", "I-ORG"], {("ORG", 0, 3)}),  # a chunk running to the end
    ],
)
def test_entity_spans(tags, spans):
    assert entity_spans(tags) == spans


def test_iob1_to_iob2():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "B-ORG", "I-ORG"]
    assert iob1_to_iob2(iob1) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "B-ORG", "I-ORG"]
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    assert iob1_to_iob2(iob2) == iob2


def test_iob1_to_iob2_keeps_entities():
    rng = random.Random(0)
    for _ in range(300):
        tags = [rng.choice(TAGS) for _ in range(rng.randrange(12))]
        converted = iob1_to_iob2(tags)
        assert entity_spans(converted) == entity_spans(tags)
        for previous, tag in zip(["O", *converted], converted, strict=False):  # IOB2: I-X only continues an X
            assert not tag.startswith("I-") or previous[2:] == tag[2:]


def test_entity_f1_counts_and_empty():
    metric = EntityF1()
    metric.update([["O"]], [["O"]])  # no entity on either side: every score is 0, as in conlleval
    assert {key: value.item() for key, value in metric.compute().items()} == {"precision": 0, "recall": 0, "f1": 0}
    metric.update([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    scores = metric.compute()
    assert (metric.true_positives.item(), metric.predicted.item(), metric.gold.item()) == (1, 2, 2)
    assert scores["precision"].item() == scores["recall"].item() == scores["f1"].item() == 0.5
    with pytest.raises(ValueError, match="tags"):
        metric.update([["O"]], [["O", "O"]])


def test_entity_f1_states_sum_across_processes():
    # DDP sums the states; merge_state applies the same reductions, so two halves must equal the whole.
    predictions = [["B-PER", "O"], ["I-LOC", "I-LOC"], ["O", "B-ORG"]]
    targets = [["B-PER", "O"], ["B-LOC", "I-LOC"], ["B-ORG", "O"]]
    whole, first, second = EntityF1(), EntityF1(), EntityF1()
    whole.update(predictions, targets)
    first.update(predictions[:2], targets[:2])
    second.update(predictions[2:], targets[2:])
    first.merge_state(second)
    assert all(torch.equal(whole.compute()[key], first.compute()[key]) for key in ("precision", "recall", "f1"))


def test_entity_f1_matches_seqeval():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = random.Random(1)
    for trial in range(30):
        metric = EntityF1()
        predictions, targets = [], []
        for _ in range(rng.randrange(1, 20)):
            length = rng.randrange(0, 12)
            # Predictions often copy the gold tag, so true positives are common rather than rare.
            gold = [rng.choice(TAGS) for _ in range(length)]
            predicted = [tag if rng.random() < 0.7 else rng.choice(TAGS) for tag in gold]
            targets.append(gold)
            predictions.append(predicted)
        for start in range(0, len(targets), 4):  # several updates, as over batches
            metric.update(predictions[start : start + 4], targets[start : start + 4])
        scores = metric.compute()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # seqeval warns when a score is undefined (and returns 0, as we do)
            expected = {
                "precision": seqeval.precision_score(targets, predictions),
                "recall": seqeval.recall_score(targets, predictions),
                "f1": seqeval.f1_score(targets, predictions),
            }
        for key, value in expected.items():
            assert scores[key].item() == pytest.approx(value, abs=1e-6), (trial, key)
