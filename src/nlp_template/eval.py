"""Evaluation entry point: `nlp-eval ckpt_path=PATH` or `python -m nlp_template.eval ckpt_path=PATH`.

The checkpoint carries the run's data and model configs and the model's label set and tokenizer location
(`inference/checkpoints.py`), so no training overrides need repeating. `+data.KEY=VALUE` changes the data
config, e.g. `+data.source.test=other.tsv` to test on another file (relative to where nlp-eval runs; the
checkpoint's own relative paths are read in the directory the training run started in). `metrics.json` names the
data files read, with their SHA-256, beside the scores.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from nlp_template.utils.config import CONFIG_DIR, print_and_save, register_resolvers
from nlp_template.utils.errors import exit_on_user_error, one_line_config_errors

log = logging.getLogger(__name__)
register_resolvers()


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint on the test split of its data (or of the overridden data); returns the metrics.

    Beside the scores: `ckpt_path` and `data_files` (split -> absolute path and SHA-256 of each local file read).
    """
    # Imported here, not at the top: `nlp-eval --help` stays fast without torch and Lightning.
    from nlp_template.inference.checkpoints import load_run
    from nlp_template.utils.run import data_files, plain_metrics, write_metrics

    run = load_run(cfg.ckpt_path)
    data_cfg = run.data_config(cfg.get("data"))
    files = data_files(data_cfg)  # before reading: the hashes are of the content the scores come from
    datamodule = hydra.utils.instantiate(data_cfg)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False)
    metrics: dict[str, Any] = plain_metrics(trainer.test(run.model, datamodule=datamodule)[0])
    metrics["ckpt_path"] = str(run.ckpt_path.resolve())
    metrics["data_files"] = files
    if trainer.is_global_zero:
        write_metrics(cfg.paths.output_dir, metrics)
    return metrics


@one_line_config_errors
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    from nlp_template.utils.checks import preflight
    from nlp_template.utils.run import apply_extras

    preflight(cfg)
    apply_extras(cfg)
    print_and_save(cfg, cfg.paths.output_dir, show=cfg.extras.get("print_config", True))
    evaluate(cfg)
    print(f"Run directory: {cfg.paths.output_dir}")


if __name__ == "__main__":
    main()
