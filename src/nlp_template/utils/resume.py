"""`ckpt_path=last` and `ckpt_path=auto`: continue the newest run of the same experiment.

"The same experiment" is the same task name, the same resolved data and model configs and the same seed (the
checkpoint carries them, see `callbacks/run_config.py`), so a resumed run never picks up another experiment's
checkpoint. The resumed run gets a new run directory: nothing the earlier run wrote is touched. `last` fails when
there is nothing to resume; `auto` then starts from scratch (for job scripts that are requeued after preemption).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from nlp_template.data.cache import cache_key
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.logger_adapters import resume_settings, stored_run_id
from nlp_template.utils.run import LOGGERS_KEY, RUN_CONFIG_KEY

log = logging.getLogger(__name__)


def experiment_key(config: dict[str, Any]) -> str:
    """A hash of the data and model configs and the seed, leaving out the run directory.

    The seed belongs to it: jobs of a `-m seed=1,2,3 ckpt_path=auto` sweep must each resume their own checkpoint.
    """
    data = {key: value for key, value in config["data"].items() if key != "output_dir"}
    return cache_key(data, config["model"], config.get("seed"))


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's top-level entries, memory-mapped (the weights are not read).

    `weights_only=True`: tensors and plain containers only. A pickle can run any code while it loads; a checkpoint
    that needs more than that was not written by this project and is refused before anything runs.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        raise UserInputError(f"{path} holds Python objects beyond tensors and plain containers, which could run code"
                             " when loaded; nlp-train checkpoints never do: load only checkpoints written by"
                             " nlp-train") from error  # fmt: skip
    except (RuntimeError, EOFError) as error:
        raise UserInputError(
            f"{path} is not a readable checkpoint (truncated or not a torch file?): {error}"
        ) from error


def find_last_checkpoint(search_dir: Path, key: str) -> Path | None:
    """The newest `last.ckpt` under `search_dir` whose run had the experiment key `key`."""
    candidates = sorted(search_dir.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        try:
            saved = read_checkpoint(path).get(RUN_CONFIG_KEY)
        except UserInputError as error:  # one broken file (a run killed mid-save) must not block every requeue
            log.warning("Skipped %s", error)
            continue
        if saved and experiment_key(saved) == key:
            return path
    return None


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint `cfg.ckpt_path` asks for: None, a path, or the newest matching `last.ckpt` for last/auto."""
    value = cfg.get("ckpt_path")
    if value is None:
        return None
    if value not in ("last", "auto"):
        path = Path(value).expanduser()
        if not path.is_file():
            raise UserInputError(f"checkpoint not found: {value} (ckpt_path=PATH, last or auto)")
        saved = (read_checkpoint(path).get(RUN_CONFIG_KEY) or {}).get("model", {}).get("_target_")
        if saved and saved != cfg.model.get("_target_"):  # before any data is prepared or a trainer started
            raise UserInputError(f"{value} is a checkpoint of {saved.rpartition('.')[2]}, but this run trains"
                                 f" {str(cfg.model.get('_target_')).rpartition('.')[2]}: resume it with the same"
                                 " experiment/model, or start from scratch without ckpt_path")  # fmt: skip
        return str(path)
    search_dir = Path(cfg.paths.log_dir) / cfg.task_name
    current = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("data", "model")}
    current["seed"] = cfg.get("seed")
    found = find_last_checkpoint(search_dir, experiment_key(current))
    if found:
        log.info("Resuming from %s", found)
        return str(found)
    if value == "auto":
        log.info("ckpt_path=auto: no checkpoint of this experiment under %s; starting from scratch", search_dir)
        return None
    raise UserInputError(
        f"ckpt_path=last: no last.ckpt of this experiment (same data and model config and seed) under {search_dir};"
        " train it first, use ckpt_path=auto to start from scratch in that case, or give ckpt_path=PATH"
    )


def continue_logger_runs(cfg: DictConfig, ckpt_path: str | None) -> None:
    """Point W&B and MLflow loggers at the runs the checkpoint was logged to, so the curves continue."""
    if not ckpt_path or not cfg.get("logger"):
        return
    ids = read_checkpoint(Path(ckpt_path)).get(LOGGERS_KEY) or {}
    with open_dict(cfg):
        for entry in cfg.logger.values():
            target = str(entry.get("_target_", "")) if entry else ""
            for field, value in resume_settings(target, stored_run_id(target, ids)).items():
                entry[field] = value
