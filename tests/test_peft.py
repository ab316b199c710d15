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
                    "choices_tiny", "sft_tiny"])  # fmt: skip


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


def test_lora_with_gradient_checkpointing_and_bf16(make_cfg):
    from nlp_template.models.text_classifier import TextClassifier

    tiny = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64}  # fmt: skip
    model = TextClassifier(config=tiny, id2label={0: "a", 1: "b"}, vocab_size=100, pad_token_id=0, peft="lora",
                           gradient_checkpointing=True).train()  # fmt: skip
    ids = torch.randint(1, 100, (4, 12))
    model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 0, 1])).loss.backward()
    grads = {name: parameter.grad for name, parameter in model.network.named_parameters() if "lora_B" in name}
    assert grads and all(grad is not None and grad.abs().sum() > 0 for grad in grads.values())  # recomputed blocks
    for extra in (["trainer.precision=bf16-mixed"], ["model.gradient_checkpointing=true"]):
        metrics = train(make_cfg([*LORA, *extra], run="_".join(extra).replace("=", "-")))
        assert metrics["trainable_parameters"] < metrics["total_parameters"] and metrics["test/loss"] < 10, extra


@pytest.mark.slow
def test_lora_with_compile(make_cfg):
    metrics = train(make_cfg([*LORA, "model.compile=true"]))
    assert metrics["trainable_parameters"] < metrics["total_parameters"] and metrics["test/loss"] < 10


@pytest.mark.slow
def test_lora_run_resumes_exactly(make_cfg, tmp_path):
    from test_resume import assert_same_weights

    common = [*FAST, "model.peft=lora", "~callbacks.early_stopping", "~callbacks.throughput"]
    log_dir = tmp_path / "logs"

    def config(overrides: list[str], run: str):
        cfg = make_cfg([*common, *overrides], run=f"logs/train/runs/{run}")
        cfg.paths.log_dir = str(log_dir)
        return cfg

    uninterrupted = train(config(["trainer.max_epochs=2"], "uninterrupted"))
    (log_dir / "train/runs/uninterrupted/checkpoints/last.ckpt").rename(tmp_path / "uninterrupted.ckpt")
    train(config(["trainer.max_epochs=2", "+callbacks.stop._target_=test_resume.StopAfterFirstEpoch"], "first"))
    resumed = train(config(["trainer.max_epochs=2", "ckpt_path=last"], "resumed"))
    # Bit-identical adapters, heads and frozen weights. (Metrics are the best checkpoint's: with val/acc tied across
    # the epochs, the resumed run, in a new directory, may pick another epoch as best; see the closing notes.)
    assert_same_weights(tmp_path / "uninterrupted.ckpt", log_dir / "train/runs/resumed/checkpoints/last.ckpt")
    assert resumed["global_step"] == uninterrupted["global_step"]


@pytest.mark.slow
def test_lora_under_ddp_sim(tmp_path):
    from test_cli import run

    paths = [f"paths.log_dir={tmp_path / 'logs'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    result = run("train", "trainer=ddp_sim", "model.peft=lora", "trainer.max_epochs=1", *FAST[:-1], *paths,
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["trainable_parameters"] < metrics["total_parameters"]


@pytest.mark.slow
def test_trainable_only_checkpoints_reload_the_frozen_weights_from_the_backbone(make_cfg, minilm, tmp_path):
    pretrained = ["model=text_classifier_pretrained", f"model.backbone={minilm}", "model.peft=lora", *FAST,
                  "data.source.num_train=160", "trainer.max_epochs=1"]  # fmt: skip
    full = train(make_cfg(pretrained, run="full"))
    small = train(make_cfg([*pretrained, "checkpoint.trainable_only=true"], run="small"))
    sizes = [Path(metrics["best_model_path"]).stat().st_size for metrics in (full, small)]
    assert sizes[1] < sizes[0] / 20  # MiniLM: ~91 MB of frozen weights left out
    assert small["test/acc"] == full["test/acc"] and small["test/loss"] == pytest.approx(full["test/loss"], abs=1e-6)
    again = evaluate(make_cfg([f"ckpt_path={small['best_model_path']}"], name="eval", run="eval"))
    assert again["test/loss"] == pytest.approx(small["test/loss"], abs=1e-6)  # nlp-eval: frozen weights reloaded
    merged = export(make_cfg([f"ckpt_path={small['best_model_path']}", f"output={tmp_path / 'hf'}"], name="export"))
    assert (Path(merged) / "model.safetensors").stat().st_size > 20 * sizes[1]  # the whole network, merged
    with pytest.raises(UserInputError, match=r"^checkpoint.trainable_only=true needs a pretrained model.backbone"):
        train(make_cfg(["model.peft=lora", "checkpoint.trainable_only=true", "debug=fdr", *FAST], run="config"))
    with pytest.raises(UserInputError, match=r"this run trains all of them; use it with model.peft=lora"):
        train(make_cfg([*pretrained[:2], "checkpoint.trainable_only=true", "debug=fdr", *FAST], run="all"))
