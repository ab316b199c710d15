"""Config helpers: custom resolvers, printing the resolved config as a Rich tree, saving it in the run directory."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf, open_dict

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = PROJECT_ROOT / "conf"


def run_id() -> str:
    """`<date>_<time>_<random>`: unique even for two runs started in the same second.

    Under torchrun every rank is its own process and composes its own config, yet all ranks of a node must write to
    one run directory: there the id is the start time and process id of the torchrun agent, which the ranks share.
    """
    if "TORCHELASTIC_RUN_ID" in os.environ:
        started = _process_start_time(os.getppid())
        if started is not None:
            return f"{time.strftime('%Y-%m-%d_%H-%M-%S', time.localtime(started))}_torchrun{os.getppid()}"
    return f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(3)}"


def _process_start_time(pid: int) -> float | None:
    """Start time (epoch seconds) of a process, from /proc (Linux); None elsewhere."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line[:5] == "btime")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def register_resolvers() -> None:
    """Register `${project_root:}` (repository root), `${run_id:}` (see `run_id`) and `${overrides_name:}`."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", run_id, use_cache=True)
    if not OmegaConf.has_resolver("overrides_name"):
        OmegaConf.register_new_resolver("overrides_name", overrides_name)


def task_overrides() -> list[str]:
    """The job's command-line overrides (`key=value`), secret-looking values shown as `***`; [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    parts = []
    for override in HydraConfig.get().overrides.task:
        key, _, value = override.partition("=")
        parts.append(f"{key}=***" if _is_secret(key.lstrip("+~").split(".")[-1]) else override)
    return parts


def overrides_name() -> str:
    """The job's command-line overrides as `key=value,...` (a run name), secret-looking values shown as `***`."""
    return ",".join(sorted(task_overrides())) or "defaults"


def resolved(cfg: DictConfig) -> dict:
    """The config as plain resolved containers, without Hydra's own node (present when composed in tests)."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)


# Whole name parts: `hf_token`, `api_key`, `wandb_api_key`, `password`; not `tokenizer`, `max_tokens`, `pad_token_id`.
SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password|passwd|credentials?)(_|$)", re.IGNORECASE)


def redact(value: Any) -> Any:
    """A copy of `value` (nested dicts/lists) with the values of secret-looking keys replaced by `***`."""
    if isinstance(value, dict):
        return {
            key: "***" if _is_secret(str(key)) and item not in (None, "") else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _is_secret(key: str) -> bool:
    return bool(SECRET_KEY.search(key)) and not key.endswith("_id")


def print_and_save(cfg: DictConfig, output_dir: str | Path, show: bool = True, order: tuple[str, ...] = ()) -> None:
    """Save the resolved config as `<output_dir>/config.yaml`; with `show`, also print it as a Rich tree.

    Groups named in `order` come first in the tree.
    """
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    cfg = OmegaConf.create(redact(resolved(cfg)))  # no secret in a saved config
    (Path(output_dir) / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if not show:
        return
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


def compose_config(
    name: str, overrides: list[str], run_dir: str | Path, cache_dir: str | Path, use_local: bool = True
) -> DictConfig:
    """Compose `conf/<name>.yaml` in Python as the command line would (tests, benchmarks, notebooks).

    The run writes to `run_dir` and caches in `cache_dir`; `use_local=False` leaves out `conf/local/default.yaml`.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        extra = [] if use_local else ["~local"]
        cfg = compose(name, overrides=[*overrides, *extra], return_hydra_config=True)
    HydraConfig().set_config(cfg)  # so ${hydra:...} resolves outside @hydra.main
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.log_dir = str(Path(run_dir).parent / "logs")
        cfg.paths.cache_dir = str(cache_dir)
    return cfg
