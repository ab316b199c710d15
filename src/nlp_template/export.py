"""Export entry point: `nlp-export ckpt_path=PATH format=hf|onnx|torchscript [output=DIR]` (or `python -m ...`).

What each format writes and how it is verified: `inference/exporting.py` (the library `export_best` uses too).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from nlp_template.utils.config import CONFIG_DIR, register_resolvers
from nlp_template.utils.errors import exit_on_user_error, one_line_config_errors

__all__ = ["export", "main"]
register_resolvers()


def export(cfg: DictConfig) -> Path:
    """Export the checkpoint `cfg.ckpt_path` as `cfg.format`; returns the output directory (`exporting.export`).

    Imported when called: `nlp-export --help` stays fast without torch, Lightning and the exporters.
    """
    from nlp_template.inference.exporting import export as run

    return run(cfg)


@one_line_config_errors
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="export")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    from nlp_template.utils.checks import preflight
    from nlp_template.utils.run import apply_extras

    preflight(cfg)
    apply_extras(cfg)
    print(f"Exported to {export(cfg)}")


if __name__ == "__main__":
    main()
