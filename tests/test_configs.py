"""Every config under conf/ composes, and every data/model/trainer/callback/logger config instantiates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import hydra
import lightning as L
import pytest
from hydra.errors import ConfigCompositionException
from lightning.pytorch.strategies import Strategy
from omegaconf import OmegaConf

from nlp_template.training import accepted
from nlp_template.utils.config import CONFIG_DIR
from nlp_template.utils.instantiate import instantiate_list
from nlp_template.utils.loggers import prepare_loggers

GROUPS = [
    "data",
    "model",
    "trainer",
    "callbacks",
    "logger",
    "debug",
    "experiment",
    "hparams_search",
    "extras",
    "paths",
    "hydra",
]


def resolve(cfg) -> dict:
    """Resolve every interpolation outside Hydra's own node (whose sweep keys only exist in a sweep)."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def all_yaml_files() -> list[Path]:
    return sorted(CONFIG_DIR.rglob("*.yaml"))


def test_no_config_folder_escapes_the_tests():
    # A YAML in a folder missing from GROUPS would never be composed below (conf/local/ is the user's own).
    covered = {CONFIG_DIR / f"{g}/{o}.yaml" for g in GROUPS for o in options(g)}
    covered |= {CONFIG_DIR / "train.yaml", CONFIG_DIR / "eval.yaml", CONFIG_DIR / "hydra/launcher/slurm.yaml"}
    covered |= {CONFIG_DIR / "predict.yaml", CONFIG_DIR / "export.yaml"}  # tests/test_predict.py, test_export.py
    covered |= {CONFIG_DIR / "serve.yaml"}  # tests/test_serve.py
    covered |= {CONFIG_DIR / "data/common/base.yaml"}  # in every data config's defaults
    covered |= {CONFIG_DIR / "data/common/seq2seq.yaml"}  # in every sequence-to-sequence data config's defaults
    covered |= {CONFIG_DIR / "model/common/peft.yaml"}  # in every Hugging Face model config's defaults
    shipped = {p for p in all_yaml_files() if p.parent.name != "local"}
    assert shipped <= covered, sorted(shipped - covered)


def test_data_configs_list_every_data_module_argument(make_cfg):
    import inspect

    from nlp_template.data.base import TokenizedDataModule

    shared = set(inspect.signature(TokenizedDataModule).parameters)
    for option in options("data"):
        cfg = make_cfg([f"data={option}"])
        own = set(inspect.signature(hydra.utils.get_class(cfg.data._target_)).parameters) - {"kwargs"}
        keys = set(cfg.data) - {"_target_"}
        assert keys == own | shared, (option, sorted(keys ^ (own | shared)))


def test_batching_defaults_are_the_measured_ones(make_cfg):
    """The embedded sentence data groups by length; real-data configs keep random: docs/results.md, "The fast path"."""
    grouped = {"sample_sentiment", "sample_pairs", "sample_reviews"}
    for option in options("data"):
        target = make_cfg([f"data={option}"]).data.get("batching")
        assert target == ("length_grouped" if option in grouped else "random"), (option, target)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS if g != "hydra" for o in options(g)])
def test_group_option_composes(make_cfg, group, option, sentiment_csv):
    overrides = [f"{group}={option}"]
    if group == "data" and option == "files":
        overrides.append(f"data.source.train={sentiment_csv()}")
    cfg = make_cfg(overrides)
    resolve(cfg)  # every interpolation resolves
    assert cfg.data._target_ and cfg.model._target_


def test_slurm_launcher_config_composes(make_cfg):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = make_cfg(["hydra/launcher=slurm", "trainer=ddp", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.tasks_per_node == launcher.gpus_per_node == 1


def test_eval_config_composes(make_cfg):
    cfg = make_cfg(["ckpt_path=some.ckpt"], name="eval")
    resolve(cfg)
    assert cfg.ckpt_path == "some.ckpt" and cfg.trainer._target_ == "lightning.pytorch.Trainer"


# Data configs whose source needs a file: a stand-in path (instantiating reads nothing).
FILE_SOURCES = {
    "files",
    "conll",
    "text_files",
    "squad",
    "parallel_files",
    "translation_files",
    "mlm_text_files",
    "choice_files",
    "chat_files",
}


@pytest.mark.parametrize("option", options("data"))
def test_data_configs_instantiate(make_cfg, option, sentiment_csv, request):
    overrides = [f"data={option}"] + ([f"data.source.train={sentiment_csv()}"] if option in FILE_SOURCES else [])
    if option.endswith("stream_files"):  # streamed shards: litdata and a pretrained tokenizer (files are read later)
        pytest.importorskip("litdata")
        overrides += ["data.source.train=corpus/*.txt", f"data.tokenizer={request.getfixturevalue('minilm')}"]
    datamodule = hydra.utils.instantiate(make_cfg(overrides).data)
    assert isinstance(datamodule, L.LightningDataModule)
    if option.endswith("stream_files"):
        assert hasattr(datamodule.source, "files")
    else:
        assert hasattr(datamodule.source, "load") and hasattr(datamodule.source, "fingerprint")


@pytest.mark.parametrize("option", options("model"))
def test_model_configs_instantiate(make_cfg, option, request):
    overrides = [f"model={option}"]
    if "pretrained" in option:  # needs a real model on disk
        overrides.append(f"model.backbone={request.getfixturevalue('minilm')}")
    data = {"vocab_size": 30522, "pad_token_id": 0}
    lm_data = {"causal_lm": "data=sample_text", "seq2seq": "data=sample_translation",
               "masked_lm": "data=mlm_sample_text", "chat_lm": "data=sample_instructions"}  # fmt: skip
    if option in lm_data:  # language models: no label head, an output over the vocabulary
        model = hydra.utils.instantiate(make_cfg([*overrides, lm_data[option]]).model, _convert_="all", **data)
        assert model.network.config.vocab_size == 30522
        return
    cfg = make_cfg(overrides).model
    facts = {"id2label": {0: "neg", 1: "pos"}, "num_choices": 4, **data}
    model = hydra.utils.instantiate(cfg, _convert_="all", **accepted(cfg, facts))
    if option == "multiple_choice":  # one score per (context, ending) pair
        assert model.network.classifier.out_features == 1
        return
    assert isinstance(model, L.LightningModule)
    head = model.network.head if option.startswith("rnn") else getattr(model.network, "classifier", None)
    assert (head or model.network.qa_outputs).out_features == 2  # two classes, or the start and end of an answer


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_configs_instantiate(make_cfg, option):
    cfg = make_cfg([f"trainer={option}"])
    assert cfg.trainer.use_distributed_sampler is False  # the data module's batch samplers shard the data
    if cfg.trainer.accelerator in ("gpu", "mps"):  # no such device here: build the strategy alone
        if "strategy" in cfg.trainer:
            if option == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
                pytest.skip("deepspeed is not installed")
            assert isinstance(hydra.utils.instantiate(cfg.trainer.strategy), Strategy)
        return
    assert isinstance(hydra.utils.instantiate(cfg.trainer), L.Trainer)


@pytest.mark.parametrize("group", ["callbacks", "logger"])
def test_callback_and_logger_configs_instantiate(make_cfg, group):
    for option in options(group):
        cfg = make_cfg([f"{group}={option}"])
        prepare_loggers(cfg.get("logger"))  # as train.py does: W&B offline without a key, SQLite folders
        objects = instantiate_list(cfg[group])
        expected = [k for k, v in (cfg[group] or {}).items() if "_target_" in v]
        assert len(objects) == len(expected)


def test_debug_modes_set_what_they_promise(make_cfg):
    assert make_cfg(["debug=fdr"]).trainer.fast_dev_run is True
    assert make_cfg(["debug=overfit"]).trainer.overfit_batches == 3
    limit = make_cfg(["debug=limit"])
    assert limit.trainer.limit_train_batches == 0.1 and "model_checkpoint" in limit.callbacks


@pytest.mark.parametrize("mode", ["fdr", "limit", "overfit", "profiler"])
def test_debug_modes_keep_the_chosen_hardware_and_log_only_this_project_at_debug(make_cfg, mode):
    # A GPU smoke test must stay on the GPUs: debug modes used to force accelerator=cpu, devices=1.
    chosen = ["trainer=ddp", "trainer.devices=2", "trainer.precision=bf16-mixed"]
    plain, debug = make_cfg(chosen).trainer, make_cfg([*chosen, f"debug={mode}"]).trainer
    for key in ("accelerator", "devices", "precision", "strategy"):
        assert debug[key] == plain[key], key
    # hydra.verbose=true would set every logger to DEBUG (matplotlib printed ~150 font lines under debug=fdr).
    assert list(make_cfg([f"debug={mode}"]).hydra.verbose) == ["nlp_template", "__main__"]


def test_wrong_key_is_rejected(make_cfg):
    with pytest.raises(ConfigCompositionException, match="max_epoch"):
        make_cfg(["trainer.max_epoch=3"])


def test_run_directories_are_unique_within_a_second(make_cfg):
    first, second = make_cfg([]), make_cfg([])
    assert first.hydra.run.dir != second.hydra.run.dir
    # Cached per config: resolving it again (as Hydra and the callbacks do) gives the same directory.
    assert OmegaConf.select(first, "hydra.run.dir") == OmegaConf.select(first, "hydra.run.dir")


def test_torchrun_ranks_share_one_run_directory(monkeypatch):
    from nlp_template.utils.config import run_id

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    # Two ranks of one torchrun job: different processes, same parent (the agent), so the same id.
    assert run_id() == run_id() and "torchrun" in run_id()
