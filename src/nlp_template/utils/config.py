"""Config helpers: custom resolvers, printing the resolved config as a Rich tree, saving it in the run directory."""

from __future__ import annotations

import secrets
from pathlib import Path

import rich
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = PROJECT_ROOT / "conf"


def register_resolvers() -> None:
    """Register `${project_root:}` (the repository root) and `${unique:}`.

    `${unique:}` is a random suffix that keeps run directories apart when two runs start in the same second; it is
    cached, so it resolves to one value per config.
    """
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("unique"):
        OmegaConf.register_new_resolver("unique", lambda: secrets.token_hex(3), use_cache=True)


def resolved(cfg: DictConfig) -> dict:
    """The config as plain resolved containers, without Hydra's own node (present when composed in tests)."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)


def print_and_save(cfg: DictConfig, output_dir: str | Path, show: bool = True, order: tuple[str, ...] = ()) -> None:
    """Save the resolved config as `<output_dir>/config.yaml`; with `show`, also print it as a Rich tree.

    Groups named in `order` come first in the tree.
    """
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if not show:
        return
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
