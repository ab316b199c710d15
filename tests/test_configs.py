"""Every config under conf/ composes, and every data/model/trainer/callback/logger config instantiates."""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from nlp_template.utils.config import CONFIG_DIR
from nlp_template.utils.instantiate import instantiate_list

GROUPS = ["data", "model", "trainer", "callbacks", "logger", "debug", "experiment", "extras", "paths", "hydra"]


def resolve(cfg) -> dict:
    """Resolve every interpolation outside Hydra's own node (whose sweep keys only exist in a sweep)."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def all_yaml_files() -> list[Path]:
    return sorted(CONFIG_DIR.rglob("*.yaml"))


def test_every_yaml_is_covered_by_a_group_or_entry_point():
    covered = {CONFIG_DIR / f"{g}/{o}.yaml" for g in GROUPS for o in options(g)}
    covered |= {CONFIG_DIR / "train.yaml", CONFIG_DIR / "eval.yaml"}
    assert set(all_yaml_files()) <= covered, "a config file is not composed by test_group_option_composes"


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS if g != "hydra" for o in options(g)])
def test_group_option_composes(make_cfg, group, option, sentiment_csv):
    overrides = [f"{group}={option}"]
    if group == "data" and option == "files":
        overrides.append(f"data.source.train={sentiment_csv()}")
    cfg = make_cfg(overrides)
    resolve(cfg)  # every interpolation resolves
    assert cfg.data._target_ and cfg.model._target_


def test_eval_config_composes(make_cfg):
    cfg = make_cfg(["ckpt_path=some.ckpt"], name="eval")
    resolve(cfg)
    assert cfg.ckpt_path == "some.ckpt" and cfg.trainer._target_ == "lightning.pytorch.Trainer"


@pytest.mark.parametrize("option", options("data"))
def test_data_configs_instantiate(make_cfg, option, sentiment_csv):
    overrides = [f"data={option}"] + ([f"data.source.train={sentiment_csv()}"] if option == "files" else [])
    datamodule = hydra.utils.instantiate(make_cfg(overrides).data)
    assert isinstance(datamodule, L.LightningDataModule)
    assert hasattr(datamodule.source, "load") and hasattr(datamodule.source, "fingerprint")


@pytest.mark.parametrize("option", options("model"))
def test_model_configs_instantiate(make_cfg, option, minilm):
    overrides = [f"model={option}"] + ([f"model.backbone={minilm}"] if "pretrained" in option else [])
    model = hydra.utils.instantiate(
        make_cfg(overrides).model, _convert_="all", id2label={0: "neg", 1: "pos"}, vocab_size=30522, pad_token_id=0
    )
    assert isinstance(model, L.LightningModule)
    assert model.network.config.num_labels == 2


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_configs_instantiate(make_cfg, option):
    cfg = make_cfg([f"trainer={option}"])
    if option == "gpu":
        assert cfg.trainer.accelerator == "gpu"  # cannot instantiate without a GPU
        return
    assert isinstance(hydra.utils.instantiate(cfg.trainer), L.Trainer)


@pytest.mark.parametrize("group", ["callbacks", "logger"])
def test_callback_and_logger_configs_instantiate(make_cfg, group):
    for option in options(group):
        cfg = make_cfg([f"{group}={option}"])
        objects = instantiate_list(cfg[group])
        expected = [k for k, v in (cfg[group] or {}).items() if "_target_" in v]
        assert len(objects) == len(expected)


def test_debug_modes_set_what_they_promise(make_cfg):
    assert make_cfg(["debug=fdr"]).trainer.fast_dev_run is True
    assert make_cfg(["debug=overfit"]).trainer.overfit_batches == 3
    limit = make_cfg(["debug=limit"])
    assert limit.trainer.limit_train_batches == 0.1 and "model_checkpoint" in limit.callbacks


def test_wrong_key_is_rejected(make_cfg):
    with pytest.raises(ConfigCompositionException, match="max_epoch"):
        make_cfg(["trainer.max_epoch=3"])


def test_run_directories_are_unique_within_a_second(make_cfg):
    first, second = make_cfg([]), make_cfg([])
    assert first.hydra.run.dir != second.hydra.run.dir
    assert OmegaConf.select(first, "hydra.run.dir") == OmegaConf.select(first, "hydra.run.dir")  # stable per run
