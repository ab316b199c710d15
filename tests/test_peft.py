"""LoRA (peft) for every Hugging Face task: what trains, checkpoints that restore, merged and adapter exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import FAST, kept

from nlp_template.eval import evaluate
from nlp_template.export import export
from nlp_template.inference.checkpoints import load_run
from nlp_template.train import train
from nlp_template.utils.errors import UserInputError

peft = pytest.importorskip("peft")
LORA = ["model.peft=lora", "debug=fdr", *FAST]
# Every task built on a Hugging Face network; the LSTM is not one (model.peft does not apply to it).
EXPERIMENTS = kept(["sentiment_tiny", "ner_tiny", "qa_tiny", "translation_tiny", "lm_tiny", "mlm_tiny",
                    "choices_tiny"])  # fmt: skip


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_lora_trains_adapters_and_new_heads_only_and_restores(make_cfg, experiment):
    cfg = make_cfg([f"experiment={experiment}", *LORA])
    metrics = train(cfg)
    assert 0 < metrics["trainable_parameters"] < 0.5 * metrics["total_parameters"], metrics
    run = load_run(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")  # rebuilt offline, adapters included
    trainable = {name for name, parameter in run.model.network.named_parameters() if parameter.requires_grad}
    assert trainable and all("lora_" in name or "modules_to_save" in name for name in trainable), sorted(trainable)
    heads = {name for name in trainable if "modules_to_save" in name}
    assert bool(heads) == run.model.peft_trains_heads  # a new head trains in full; language models have none


@pytest.mark.task("text_classification")
def test_merged_hf_export_and_adapter_export_give_the_checkpoint_outputs(make_cfg, tmp_path):
    cfg = make_cfg(["experiment=sentiment_tiny", "model.peft=lora", *FAST, "trainer.max_epochs=1"])
    metrics = train(cfg)
    ckpt = metrics["best_model_path"]
    assert evaluate(make_cfg([f"ckpt_path={ckpt}"], name="eval", run="eval"))["test/acc"] == pytest.approx(
        metrics["test/acc"], abs=1e-6
    )
    run = load_run(ckpt)
    datamodule = run.datamodule()
    datamodule.prepare_data()
    batch = datamodule.collate_inputs([dict(row) for row in datamodule.splits["test"].select(range(8))])
    with torch.no_grad():
        reference = run.model.network.eval()(**batch).logits

    merged = export(make_cfg([f"ckpt_path={ckpt}", f"output={tmp_path / 'hf'}"], name="export"))
    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    assert not any("lora" in name for name, _ in plain.named_parameters())
    with torch.no_grad():
        assert torch.allclose(plain(**batch).logits, reference, atol=1e-5)

    adapters = export(make_cfg([f"ckpt_path={ckpt}", f"output={tmp_path / 'peft'}", "format=peft"], name="export"))
    assert json.loads((Path(adapters) / "adapter_config.json").read_text())["peft_type"] == "LORA"
    base = load_run(ckpt).model.network.unload()  # the frozen weights without adapters: what a user starts from
    adapted = peft.PeftModel.from_pretrained(base, adapters).eval()
    with torch.no_grad():
        assert torch.allclose(adapted(**batch).logits, reference, atol=1e-5)


def test_bad_peft_settings_are_one_line(make_cfg):
    from nlp_template.models.text_classifier import TextClassifier

    tiny = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 64}  # fmt: skip
    build = {"config": tiny, "id2label": {0: "neg", 1: "pos"}, "vocab_size": 100, "pad_token_id": 0}
    with pytest.raises(UserInputError, match=r"target_modules=\['nowhere'\] matches no layer .* named \[.*'query'"):
        TextClassifier(**build, peft="lora", peft_settings={"target_modules": ["nowhere"]})
    with pytest.raises(UserInputError, match=r"^model.peft=lorax is not a peft method; use one of \["):
        TextClassifier(**build, peft="lorax")
    network = TextClassifier(**build, peft="lora").network  # BERT: peft's table (query, value) inside the encoder
    adapted = {name.split(".lora_A")[0] for name, _ in network.named_parameters() if "lora_A" in name}
    assert adapted and all(name.endswith(("self.query", "self.value")) for name in adapted), adapted
    metrics = train(make_cfg(["debug=fdr", *FAST], run="full"))
    ckpt = str(Path(make_cfg([], run="full").paths.output_dir) / "checkpoints" / "last.ckpt")
    assert metrics["trainable_parameters"] == metrics["total_parameters"]
    with pytest.raises(UserInputError, match=r"^format=peft writes the adapters of a run trained with model.peft"):
        export(make_cfg([f"ckpt_path={ckpt}", "format=peft"], name="export", run="export"))
