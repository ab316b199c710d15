"""Masked-LM continued pretraining: masking, packed [CLS] ... [SEP] blocks, fixed evaluation masks, learning, predict,
export, and the export as the backbone of another task (the domain-adaptation recipe)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import FAST

from nlp_template.data.masked_lm import MaskedLMDataModule
from nlp_template.data.masking import SPECIAL, WORD_CONTINUE, WORD_START, mask_tokens, word_ids
from nlp_template.data.samples import SentimentSamples
from nlp_template.eval import evaluate
from nlp_template.export import export
from nlp_template.models.masked_lm import MaskedLM
from nlp_template.predict import predict
from nlp_template.train import train
from nlp_template.utils.errors import UserInputError

pytestmark = pytest.mark.task("masked_lm")
TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 32}  # fmt: skip


def prepare(tmp_path: Path, **kwargs) -> MaskedLMDataModule:
    kwargs = {"block_size": 32, "vocab_size": 300, "eos_between_documents": True, "cache_dir": str(tmp_path / "c"),
              **kwargs}  # fmt: skip
    dm = MaskedLMDataModule(SentimentSamples(num_train=300, num_validation=40, num_test=40), **kwargs)
    dm.prepare_data()
    return dm


def test_token_masking_rates_skip_special_tokens_and_never_leave_a_row_without_a_target():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (64, 128))
    marks = torch.full((64, 128), WORD_START)
    marks[:, 0] = marks[:, -1] = SPECIAL  # [CLS] ... [SEP]
    inputs, labels = mask_tokens(ids, word_ids(marks, False), 0.15, 3, 1000, 0.8, 0.1, generator)
    picked = labels != -100
    assert not picked[:, 0].any() and not picked[:, -1].any()
    assert picked.float().mean().item() == pytest.approx(0.15 * 126 / 128, abs=0.01)
    assert torch.equal(labels[picked], ids[picked]) and torch.equal(inputs[~picked], ids[~picked])
    to_mask = (inputs[picked] == 3).float().mean().item()
    unchanged = (inputs[picked] == ids[picked]).float().mean().item()
    assert to_mask == pytest.approx(0.8, abs=0.02) and unchanged == pytest.approx(0.1, abs=0.02)
    # A row with a tiny probability still gets one target (a batch of only -100 labels has a NaN loss).
    _, labels = mask_tokens(ids[:4], word_ids(marks[:4], False), 1e-9, 3, 1000, generator=generator)
    assert ((labels != -100).sum(1) == 1).all()


def test_whole_word_masking_masks_every_piece_of_a_picked_word():
    marks = torch.tensor([[SPECIAL, WORD_CONTINUE, WORD_START, WORD_CONTINUE, WORD_CONTINUE, WORD_START, WORD_START,
                           WORD_CONTINUE, SPECIAL]] * 2000)  # fmt: skip
    units = word_ids(marks, True)
    assert units[0].tolist() == [-1, -1, 0, 0, 0, 1, 2, 2, -1]  # a block's leading continuation is never masked
    ids = torch.arange(9).expand(2000, 9) + 10
    _, labels = mask_tokens(ids, units, 0.3, 3, 100, generator=torch.Generator().manual_seed(1))
    picked = labels != -100
    assert not picked[:, [0, 1, 8]].any()
    for word in ([2, 3, 4], [6, 7]):  # all pieces of a word together, or none
        assert (picked[:, word].all(1) | ~picked[:, word].any(1)).all()
    # Each of the 3 words is picked with p = 0.3, plus a third of the rows where none was (each row gets a target).
    assert picked[:, 2].float().mean().item() == pytest.approx(0.3 + 0.7**3 / 3, abs=0.03)


def test_blocks_are_cls_tokens_sep_and_evaluation_masks_are_fixed(tmp_path):
    dm = prepare(tmp_path)
    tokenizer = dm.tokenizer
    for split in ("train", "validation", "test"):
        for block in dm.splits[split]["input_ids"]:
            assert block[0] == tokenizer.cls_token_id and block[-1] == tokenizer.sep_token_id and len(block) <= 32
    assert tokenizer.sep_token_id in dm.splits["train"][0]["input_ids"][1:-1]  # documents separated by [SEP]
    # Training blocks carry word marks and are masked per batch; evaluation blocks carry their fixed labels.
    assert set(dm.splits["train"].column_names) == {"input_ids", "word_marks", "length"}
    assert set(dm.splits["validation"].column_names) == {"input_ids", "labels", "length"}
    # Another cache: the same masked positions (drawn from data.seed; a retrained tokenizer may number tokens apart).
    again = prepare(tmp_path / "again")
    positions = [[[i for i, label in enumerate(row) if label != -100] for row in d.splits["validation"]["labels"]]
                 for d in (dm, again)]  # fmt: skip
    assert positions[0] == positions[1] and sum(map(len, positions[0])) > 0
    collate = dm.collator()
    rows = [dm.splits["validation"][i] for i in range(4)]
    alone = [collate([row])["labels"][0] for row in rows]
    together = collate(rows)["labels"]
    for index, labels in enumerate(alone):  # batching changes no target
        assert torch.equal(together[index, : len(labels)], labels) and (together[index, len(labels) :] == -100).all()
    batch = collate([dm.splits["train"][i] for i in range(4)])
    assert {"input_ids", "attention_mask", "labels"} == set(batch) and (batch["labels"] != -100).any()


def test_settings_and_tokenizers_are_checked(tmp_path):
    with pytest.raises(UserInputError, match=r"^data.mlm_probability must be between 0 and 1"):
        MaskedLMDataModule(SentimentSamples(), mlm_probability=0)
    with pytest.raises(UserInputError, match=r"mask_replace_prob and data.random_replace_prob must be >= 0 and sum"):
        MaskedLMDataModule(SentimentSamples(), mask_replace_prob=0.9, random_replace_prob=0.2)
    with pytest.raises(UserInputError, match=r"needs a tokenizer with mask_token, cls_token, sep_token"):
        prepare(tmp_path, tokenizer_type="char")
    with pytest.raises(UserInputError, match=r"data.block_size=64 is larger than the model's 32 position"):
        MaskedLM(config=TINY_BERT, vocab_size=50, pad_token_id=0, block_size=64)


@pytest.mark.slow
def test_mlm_learns_evaluates_predicts_exports_and_becomes_a_backbone(make_cfg, tmp_path):
    cfg = make_cfg(["experiment=mlm_tiny", *FAST, "data.source.num_train=4000"])
    metrics = train(cfg)
    # The unigram plateau is ~4.3 nats; the experiment leaves it after ~250 steps (measured with
    # `nlp-train experiment=mlm_tiny`: 4.28 after epoch 1, 2.51 after 5, 1.42 after its 10).
    assert metrics["val/loss"] < 1.5 and metrics["test/ppl"] == pytest.approx(2.718281828 ** metrics["test/loss"])
    ckpt = metrics["best_model_path"]
    again = evaluate(make_cfg([f"ckpt_path={ckpt}"], name="eval", run="eval"))
    assert again["test/loss"] == pytest.approx(metrics["test/loss"], abs=1e-6)  # fixed masks: the same number

    inputs = tmp_path / "masked.txt"
    inputs.write_text("the acting was [MASK] .\n\nno mask in this line\n")
    results = predict(make_cfg([f"ckpt_path={ckpt}", f"input={inputs}", f"output={tmp_path / 'p.jsonl'}",
                                "+settings.top_k=3"], name="predict"))  # fmt: skip
    assert [row["line"] for row in results] == [1, 3]
    assert len(results[0]["masks"]) == 1 and len(results[0]["masks"][0]) == 3 and results[1]["masks"] == []
    assert "[MASK]" not in results[0]["filled"] and results[0]["filled"].startswith("the acting was")

    directory = export(make_cfg([f"ckpt_path={ckpt}", f"output={tmp_path / 'hf'}"], name="export"))
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(directory), top_k=3)
    assert [c["token_str"] for c in fill("the acting was [MASK] .")] == [c["token"] for c in results[0]["masks"][0]]
    onnx = export(make_cfg([f"ckpt_path={ckpt}", f"output={tmp_path / 'onnx'}", "format=onnx"], name="export"))
    assert json.loads((Path(onnx) / "export_report.json").read_text())["max_abs_diff"] < 1e-3

    # The recipe: the export is the backbone of a classifier (encoder weights carried over, a fresh head).
    classifier = make_cfg(["experiment=sentiment_tiny", *FAST, "debug=fdr", "model=text_classifier_pretrained",
                           f"model.backbone={directory}", "data.max_length=64"], run="classifier")  # fmt: skip
    assert "test/acc" in train(classifier)
    from transformers import AutoModelForSequenceClassification

    network = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=2)
    mlm = MaskedLM.load_from_checkpoint(ckpt, map_location="cpu").network
    encoder, pretrained = network.base_model.state_dict(), mlm.base_model.state_dict()
    assert encoder.keys() == pretrained.keys()  # the whole encoder carried over
    assert all(torch.equal(encoder[name], pretrained[name]) for name in encoder)
    # ... and of every other encoder task: tagging, QA, multiple choice (the same encoder weights in each).
    from nlp_template.models.multiple_choice import MultipleChoice
    from nlp_template.models.question_answering import QuestionAnswering
    from nlp_template.models.token_classifier import TokenClassifier

    tags = {0: "O", 1: "B-X", 2: "I-X"}
    for task in (TokenClassifier(backbone=str(directory), pretrained=True, id2label=tags),
                 QuestionAnswering(backbone=str(directory), pretrained=True),
                 MultipleChoice(backbone=str(directory), pretrained=True, num_choices=4)):  # fmt: skip
        weights = task.network.base_model.state_dict()
        assert all(torch.equal(weights[name], pretrained[name]) for name in pretrained), type(task).__name__
