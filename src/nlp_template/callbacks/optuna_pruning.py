"""`OptunaPruning`: report the monitored metric of every validation to the Optuna trial, and stop a bad trial early.

The Optuna sweeper adds it to each job it launches as `run_callbacks.optuna_pruning` (study name, storage, trial
number). The job loads its trial from the shared storage, reports `monitor.metric` after each validation (step = the
number of validations so far) and, when the study's pruner says so, raises `optuna.TrialPruned`, which the sweeper
records as a pruned trial. Under DDP rank 0 reports and decides, and every rank stops together.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn


class OptunaPruning(L.Callback):
    """Report to an Optuna trial and prune it.

    Args:
        study_name: the study's name in the storage.
        storage: the study's storage URL (shared with the sweeper).
        trial: the trial number this job runs.
        monitor: the metric reported (the sweep's objective, e.g. `val/acc`).
    """

    def __init__(self, study_name: str, storage: str, trial: int, monitor: str) -> None:
        self.study_name, self.storage, self.trial_number, self.monitor = study_name, storage, trial, monitor
        self._trial = None
        self._reports = 0

    def _load_trial(self):  # noqa: ANN202 - optuna is an optional dependency
        import optuna

        if self._trial is None:
            # The sweeper's pruner (a loaded study would otherwise get Optuna's default one).
            study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=_sweep_pruner())
            trial_id = next(t._trial_id for t in study.get_trials(deepcopy=False) if t.number == self.trial_number)
            self._trial = optuna.trial.Trial(study, trial_id)
        return self._trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Report the metric; raise `optuna.TrialPruned` on every rank when the pruner stops the trial."""
        import optuna

        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:  # not train.py's final validation
            return
        value = trainer.callback_metrics.get(self.monitor)
        prune = False
        if trainer.is_global_zero and value is not None:
            trial = self._load_trial()
            trial.report(float(value), step=self._reports)
            prune = trial.should_prune()
        self._reports += 1
        if trainer.strategy.broadcast(prune, src=0):
            raise optuna.TrialPruned(f"{self.monitor}={float(value or 0):.4f} after {self._reports} validation(s)")


def _sweep_pruner() -> Any:
    """The pruner configured in `hydra.sweeper.pruner` of the running sweep (Optuna's NopPruner without one)."""
    import optuna
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import instantiate

    try:
        config = HydraConfig.get().sweeper.get("pruner")
    except ValueError:  # not running under Hydra
        config = None
    return instantiate(config) if config else optuna.pruners.NopPruner()
