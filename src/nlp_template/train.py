"""Training entry point: `nlp-train [overrides]` or `python -m nlp_template.train [overrides]`.

Deliberately light: only Hydra and the config helpers are imported here, so `nlp-train --help`, `--cfg job` and
shell completion answer without importing torch, Lightning or transformers (seconds each). The run itself lives in
`training.py`, imported when a job starts.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from nlp_template.utils.config import CONFIG_DIR, print_and_save, register_resolvers
from nlp_template.utils.errors import exit_on_user_error, one_line_config_errors

register_resolvers()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the model the config describes; returns the metrics also written to `metrics.json`."""
    from nlp_template.training import train as run

    return run(cfg)


@one_line_config_errors
@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns `cfg.optimized_metric` for sweepers."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from nlp_template.callbacks.preemption import StoppedByUser
    from nlp_template.training import resume_command
    from nlp_template.utils.checks import preflight
    from nlp_template.utils.distributed import clean_distributed_state
    from nlp_template.utils.run import apply_extras, check_fresh_run_dir
    from nlp_template.utils.summary import announce, run_summary

    preflight(cfg)  # one-line errors for config mistakes, before anything is built
    check_fresh_run_dir(cfg.paths.output_dir)  # before config.yaml is written there
    apply_extras(cfg)
    if rank_zero_only.rank == 0:  # DDP children run this function too
        order = ("data", "model", "trainer", "callbacks", "logger", "paths")
        print_and_save(cfg, cfg.paths.output_dir, show=cfg.extras.get("print_config", True), order=order)
    with clean_distributed_state():
        try:
            metrics = train(cfg)
        except SIGTERMException as stop:  # preempted or Ctrl-C: PreemptionCheckpoint saved last.ckpt, logged where
            by_user = isinstance(stop, StoppedByUser)
            if rank_zero_only.rank == 0:
                resume = resume_command() if by_user else "ckpt_path=last"
                announce(f"Stopped by {'Ctrl-C' if by_user else 'SIGTERM'}; resume with {resume} (run directory:"
                         f" {cfg.paths.output_dir})")  # fmt: skip
            sys.exit(130 if by_user else 143)  # 128 + the signal, as a shell reports a process it stopped
    if rank_zero_only.rank == 0:
        announce(run_summary(cfg, metrics))  # results and the next commands, also in train.log
        announce(f"Run directory: {cfg.paths.output_dir}")
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
