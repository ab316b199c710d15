"""Config helpers: the project root, custom resolvers, the saved config, composing configs in Python.

The project root (where `conf/` is read and `logs/`, `.cache/` and `data/` live) is found from the working
directory, not from where the package is installed: two clones sharing one virtual environment each use their own
(see `find_project_root` and docs/runs.md).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf, open_dict

from nlp_template.utils.errors import UserInputError, full_error_wanted

log = logging.getLogger(__name__)
ROOT_MARKER = ".project-root"  # an empty file at the top of every clone of this project
ROOT_ENV = "NLP_TEMPLATE_ROOT"  # overrides the search: the project root to use, wherever the command runs
# The clone this package is imported from (an editable install); None for a plain install into site-packages.
_here = Path(__file__).resolve().parents[3]
PACKAGE_CLONE: Path | None = _here if (_here / "src" / "nlp_template").is_dir() else None
_warned: set[str] = set()


def find_project_root(start: str | Path | None = None) -> Path:
    """The project root for a command run in `start` (default: the working directory).

    `NLP_TEMPLATE_ROOT` if set (it must hold `conf/`), else the nearest directory at or above `start` holding
    `.project-root`, else the clone the package is imported from, with a warning (a command started outside any
    clone, e.g. `nlp-eval` from a data folder), else `start` itself, with a warning.
    A root other than the package's clone is warned about too: its configs are used, but the code is the clone's.
    """
    override = os.environ.get(ROOT_ENV)
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / "conf").is_dir():
            raise UserInputError(
                f"{ROOT_ENV}={override} is not a project root (it has no conf/ folder); point it at a clone of this"
                f" project or unset it (the root is then the clone around the working directory)"
            )
        return _checked_against_code(root)
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        # With conf/ too: lightning-hydra-template projects use the same marker name for their own roots.
        if (folder / ROOT_MARKER).is_file() and (folder / "conf").is_dir():
            return _checked_against_code(folder)
    fallback = PACKAGE_CLONE or here
    if not (fallback / "conf").is_dir():  # a plain (not editable) install, run outside any clone
        raise UserInputError(
            f"{here} is in no project (no {ROOT_MARKER} with a conf/ folder in it or above it) and the installed"
            f" package is not a clone; run from inside a clone of this project or set {ROOT_ENV}=<clone>"
        )
    _warn_once(
        f"{here} is in no project (no {ROOT_MARKER} in it or above it): using the configs, logs and cache of"
        f" {fallback}{' (the clone nlp_template is installed from)' if PACKAGE_CLONE else ''}; run from inside a"
        f" clone or set {ROOT_ENV}=<clone> to choose"
    )
    return fallback


def _checked_against_code(root: Path) -> Path:
    """`root`, with a warning when the Python code in use comes from another clone (a shared virtual environment)."""
    if PACKAGE_CLONE is not None and root != PACKAGE_CLONE:
        _warn_once(
            f"project root {root} is not the clone whose code runs ({PACKAGE_CLONE}/src, installed in this"
            f" environment): its conf/, logs/ and .cache/ are used, its src/ is not (pip install -e {root} to use it)"
        )
    return root


def _warn_once(message: str) -> None:
    if message in _warned:
        return
    _warned.add(message)
    if logging.getLogger().hasHandlers():
        log.warning(message)
    else:  # at import, before the entry point configures logging: Python's last-resort handler has no level name
        print(f"warning: {message}", file=sys.stderr)


def _root_at_start() -> Path:
    """The project root of this process; a bad `NLP_TEMPLATE_ROOT` ends it with one `error:` line."""
    try:
        return find_project_root()
    except UserInputError as error:
        if full_error_wanted():
            raise
        sys.exit(f"error: {error}")  # at import: before any entry point could catch it


# Fixed for the process (the `@hydra.main` decorators read CONFIG_DIR at import); `compose_config` and the
# `${project_root:}` resolver look again, so code that changes directory (tests, notebooks) follows.
PROJECT_ROOT = _root_at_start()
CONFIG_DIR = PROJECT_ROOT / "conf"


def run_id() -> str:
    """`<date>_<time>_<random>`: unique even for two runs started in the same second.

    Under torchrun every rank is its own process and composes its own config, yet all ranks must write to one run
    directory: on one node the id is the start time and process id of the torchrun agent, which its ranks share;
    across nodes only the rendezvous id is shared (`--rdzv-id`, unique per job: e.g. the SLURM job id). The tasks
    `srun` starts (tools/slurm_multinode.sbatch) share the SLURM job id; a requeued job resumes in its directory.
    """
    if int(os.environ.get("GROUP_WORLD_SIZE", "1")) > 1:  # several torchrun agents (nodes) in one job
        job = os.environ.get("TORCHELASTIC_RUN_ID", "none")
        if job == "none":
            raise UserInputError("a torchrun job of several nodes needs --rdzv-id=<an id unique to the job> (e.g."
                                 " $SLURM_JOB_ID): its nodes name their shared run directory after it")  # fmt: skip
        return f"torchrun-{job}"
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ:  # srun: a process per task
        return f"slurm-{os.environ['SLURM_JOB_ID']}"
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
    """Register `${project_root:}` (see `find_project_root`), `${run_id:}` (see `run_id`) and `${overrides_name:}`."""
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(find_project_root()))
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


UNRESOLVED = ("hydra", "run_callbacks")


def resolved(cfg: DictConfig) -> dict:
    """The config as plain resolved containers, without Hydra's own node (present when composed in tests).

    `run_callbacks` stays as written: it refers to `${data}` and `${model}`, and a resolved copy would print the data
    and model twice and, in a saved config.yaml, keep an old copy when `data` is edited.
    """
    config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k not in UNRESOLVED]), resolve=True)
    config.update({key: OmegaConf.to_container(cfg[key]) for key in UNRESOLVED if key != "hydra" and key in cfg})
    return config


# Keys whose values are secrets: the key ends in a secret word (`token`, `hf_token`, `github_token`, `db_password`,
# `openai_api_key`, `aws_secret_access_key`), matched case-insensitively. Keys that only contain such a word are
# settings (`token_column`, `max_tokens`, `tokenizer`, `pad_token_id`), and a saved config must hold them to
# reproduce its run: the old substring match redacted `token_column: 0`.
SECRET_KEY = re.compile(
    r"(^|_)(api_?key|token|secret|secret_key|secret_access_key|password|passwd|credentials?|private_key)$",
    re.IGNORECASE,
)
REDACTED = "***"


def redact(value: Any) -> Any:
    """A copy of `value` (nested dicts/lists) with the values of secret keys (`SECRET_KEY`) replaced by `***`."""
    if isinstance(value, dict):
        return {
            key: REDACTED if _is_secret(str(key)) and item not in (None, "") else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _is_secret(key: str) -> bool:
    return SECRET_KEY.search(key) is not None


def saved_config(config: dict) -> dict:
    """What `config.yaml` holds: the resolved `config`, secrets redacted, the run directory left open.

    Every value is resolved except that the run's own directory reads `${paths.output_dir}` (checkpoint folder,
    logger folders, ...) and `paths.output_dir` reads `${hydra:runtime.output_dir}` again: composed anew (see
    `compose_saved_config`, or `nlp-train --config-dir=<run dir> --config-name=config`) the config reproduces the
    run in a new directory instead of writing over the old run's checkpoints.
    """
    config = redact(config)
    output_dir = str((config.get("paths") or {}).get("output_dir") or "").rstrip("/")
    if not output_dir:
        return config
    inside = re.compile(re.escape(output_dir) + r"(?=/|$)")

    def reopened(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reopened(item) for key, item in value.items()}
        if isinstance(value, list):
            return [reopened(item) for item in value]
        return inside.sub(lambda _: "${paths.output_dir}", value) if isinstance(value, str) else value

    config = reopened(config)
    config["paths"]["output_dir"] = "${hydra:runtime.output_dir}"
    return config


def print_and_save(cfg: DictConfig, output_dir: str | Path, show: bool = True, order: tuple[str, ...] = ()) -> None:
    """Save the config as `<output_dir>/config.yaml` (see `saved_config`); with `show`, print it as a Rich tree.

    Groups named in `order` come first in the tree.
    """
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    config = resolved(cfg)
    (Path(output_dir) / "config.yaml").write_text(OmegaConf.to_yaml(saved_config(config)))
    if not show:
        return
    cfg = OmegaConf.create(redact(config))  # no secret on the screen either
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    plain = OmegaConf.to_yaml(OmegaConf.create({key: cfg[key] for key in keys}))
    to_log_file(f"CONFIG\n{plain}")
    if not sys.stdout.isatty():  # a pipe, a file, a SLURM log: plain YAML, never cut at 80 columns as Rich would
        print(f"CONFIG\n{plain}", flush=True)
        return
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value) if isinstance(value, DictConfig) else str(value)  # resolved already
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


def to_log_file(text: str) -> None:
    """Append `text` to the run's log file (Hydra's file handler), not to the console: what is printed is logged."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(logging.LogRecord(__name__, logging.INFO, __file__, 0, text, None, None))


def compose_config(
    name: str, overrides: list[str], run_dir: str | Path, cache_dir: str | Path, use_local: bool = True
) -> DictConfig:
    """Compose `conf/<name>.yaml` in Python as the command line would (tests, benchmarks, notebooks).

    `conf/` is the project root's (`find_project_root`: from the working directory, as on the command line). The
    run writes to `run_dir` and caches in `cache_dir`; `use_local=False` leaves out `conf/local/default.yaml`.
    """
    extra = [] if use_local else ["~local"]
    cfg = _compose(find_project_root() / "conf", name, [*overrides, *extra])
    with open_dict(cfg):
        cfg.paths.log_dir = str(Path(run_dir).parent / "logs")
        cfg.paths.cache_dir = str(cache_dir)
    return _in_run_dir(cfg, run_dir)


def compose_saved_config(saved_run: str | Path, overrides: list[str], run_dir: str | Path) -> DictConfig:
    """The config a run saved (`<saved_run>/config.yaml`) with `overrides`, for a new run in `run_dir`.

    The same as `nlp-train --config-dir=<saved_run> --config-name=config [overrides]`; secrets were not saved
    (they read `***`): give them again as overrides, e.g. `hf_token=...`.
    """
    if not (Path(saved_run) / "config.yaml").is_file():
        raise UserInputError(f"no config.yaml in {saved_run}: give the directory of a run (logs/train/runs/<id>)")
    return _in_run_dir(_compose(Path(saved_run), "config", overrides), run_dir)


def _compose(config_dir: Path, name: str, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    register_resolvers()
    with initialize_config_dir(str(Path(config_dir).resolve()), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)  # so ${hydra:...} resolves outside @hydra.main
    return cfg


def _in_run_dir(cfg: DictConfig, run_dir: str | Path) -> DictConfig:
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg
