"""`OptunaStudySweeper`: Hydra multirun driven by a current Optuna study, persistent, resumable, with pruning.

Why not the official `hydra-optuna-sweeper`: it pins `optuna<3` (2021), its SQLite storage needs `sqlalchemy<2`, it
cannot prune, and a crashed search cannot be resumed. This sweeper is a thin layer on current Optuna:

- the study lives in a storage (default: SQLite under `logs/`), created or loaded by name, so running the same
  command again continues the search; trials left RUNNING by a crashed sweep are marked failed and their parameters
  enqueued again, so nothing is lost;
- trials are asked in batches of `n_jobs` and handed to Hydra's launcher (basic: one after the other; joblib:
  in parallel; submitit: SLURM jobs), each with its parameters as ordinary overrides plus a
  `run_callbacks.optuna_pruning` entry that lets the job report intermediate values (`callbacks/optuna_pruning.py`)
  and be pruned;
- each finished job's return value (`optimized_metric`) is told to the study; a pruned job (it raised
  `optuna.TrialPruned`) is told PRUNED; any other failure is told FAIL and stops the sweep with the job's error;
- at the end `<sweep dir>/optuna_summary.yaml` (best value and parameters, counts) and `trials.csv` are written.

Optuna is imported only when a sweep runs: Hydra imports every plugin module at start-up, also where the `sweep`
extra is not installed. (No `from __future__ import annotations` here: Hydra's plugin scan loads this module in a
way that breaks dataclasses with string annotations.)

Search spaces use Hydra's sweep syntax: `choice(16, 32)`, `range(1, 4)`, `interval(1e-5, 1e-3)` and
`tag(log, interval(1e-5, 1e-3))` for log scale.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
PRUNING = "nlp_template.callbacks.optuna_pruning.OptunaPruning"


@dataclass
class OptunaStudySweeperConf:
    """Settings of `hydra/sweeper=optuna_study` (see `conf/hparams_search/` for examples)."""

    _target_: str = "hydra_plugins.nlp_template_sweeper.optuna_study.OptunaStudySweeper"
    study_name: str = "study"
    storage: str | None = None  # e.g. sqlite:///logs/optuna.db; None keeps the study in memory (no resume)
    direction: str = "maximize"  # maximize | minimize (max/min accepted: ${monitor.mode})
    n_trials: int = 20
    n_jobs: int = 1  # trials launched together (in parallel with a parallel launcher)
    sampler: Any = None  # e.g. {_target_: optuna.samplers.TPESampler, seed: 42}; None: Optuna's default
    pruner: Any = None  # e.g. {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 1}; None: no pruning
    params: dict[str, str] = field(default_factory=dict)  # override key -> sweep expression


ConfigStore.instance().store(group="hydra/sweeper", name="optuna_study", node=OptunaStudySweeperConf, provider="nlp")


def distribution(override: Override) -> Any:
    """The Optuna distribution of one parsed sweep override (choice, range or interval)."""
    import optuna

    value = override.value()
    if isinstance(value, ChoiceSweep):
        return optuna.distributions.CategoricalDistribution(list(value.list))
    if isinstance(value, RangeSweep):
        step = int(value.step or 1)
        return optuna.distributions.IntDistribution(int(value.start), int(value.stop) - step, step=step)
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return optuna.distributions.IntDistribution(value.start, value.end, log=log_scale)
        return optuna.distributions.FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(
        f"{override.key_or_group}: use choice(...), range(...) or interval(...), not '{override.input_line}'"
    )


def search_space(params: dict[str, str]) -> dict[str, Any]:
    """Parse `{key: sweep expression}` into Optuna distributions."""
    parser = OverridesParser.create()
    overrides = parser.parse_overrides([f"{key}={expression}" for key, expression in params.items()])
    return {override.get_key_element(): distribution(override) for override in overrides}


class OptunaStudySweeper(Sweeper):
    """Hydra sweeper over an Optuna study; see the module docstring."""

    def __init__(
        self, study_name: str, storage: str | None, direction: str, n_trials: int, n_jobs: int, sampler: Any,
        pruner: Any, params: dict[str, str],
    ) -> None:  # fmt: skip
        self.study_name, self.storage, self.n_trials, self.n_jobs = study_name, storage, n_trials, max(1, n_jobs)
        self.direction = {"max": "maximize", "min": "minimize"}.get(direction, direction)
        self.sampler_config, self.pruner_config = sampler, pruner
        self.space = search_space(dict(params or {}))

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep the config and build the configured launcher."""
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def study(self) -> Any:
        """Create the study, or load it from the storage (a resumed search)."""
        import optuna

        if self.storage and self.storage.startswith("sqlite:///"):
            Path(self.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return optuna.create_study(
            study_name=self.study_name, storage=self.storage, direction=self.direction, load_if_exists=True,
            sampler=_built(self.sampler_config),
            pruner=_built(self.pruner_config) or optuna.pruners.NopPruner(),
        )  # fmt: skip

    def _pruning(self, trial: int) -> list[str]:
        """The override that gives a job its pruning callback (it loads its trial from the shared storage)."""
        if not self.storage:  # an in-memory study cannot be reached from the job
            return []
        return [
            f"+run_callbacks.optuna_pruning={{_target_:{PRUNING},study_name:'{self.study_name}',"
            f"storage:'{self.storage}',trial:{trial},monitor:'${{monitor.metric}}'}}"
        ]

    def sweep(self, arguments: list[str]) -> None:
        """Run trials until the study has `n_trials` finished (complete or pruned) ones; write the summary."""
        import optuna  # noqa: F401 - fail here, clearly, when the sweep extra is missing

        study = self.study()
        _requeue_interrupted(study)
        fixed = [argument for argument in arguments if "=" in argument]
        while (finished := _count(study)) < self.n_trials:
            trials = [study.ask(self.space) for _ in range(min(self.n_jobs, self.n_trials - finished))]
            overrides = [
                [*fixed, *(f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
                           for key, value in trial.params.items()),
                 *self._pruning(trial.number)]
                for trial in trials
            ]  # fmt: skip
            returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
            for trial, result in zip(trials, returns, strict=True):
                self._tell(study, trial, result)
        self._summarise(study)

    def _tell(self, study: Any, trial: Any, result: Any) -> None:
        import optuna

        error = result._return_value if result.status == JobStatus.FAILED else None
        if isinstance(error, optuna.TrialPruned):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            log.info("Trial %d pruned: %s", trial.number, error)
        elif error is not None or result.return_value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise error or RuntimeError(f"trial {trial.number} returned no value for optimized_metric")
        else:
            study.tell(trial, float(result.return_value))
            log.info("Trial %d: %s -> %s", trial.number, trial.params, result.return_value)

    def _summarise(self, study: Any) -> None:
        import optuna

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        states = [trial.state.name for trial in study.trials]
        complete = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
        summary = {
            "study_name": study.study_name,
            "storage": self.storage,
            "direction": self.direction,
            "best_value": study.best_value if complete else None,
            "best_params": study.best_params if complete else None,
            "best_trial": study.best_trial.number if complete else None,
            "trials": {state: states.count(state) for state in sorted(set(states))},
        }
        (sweep_dir / "optuna_summary.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(summary)))
        study.trials_dataframe().to_csv(sweep_dir / "trials.csv", index=False)
        log.info("Best %s = %s with %s (%s)", self.direction, summary["best_value"], summary["best_params"],
                 sweep_dir / "optuna_summary.yaml")  # fmt: skip


def _built(config: Any) -> Any:
    """A sampler/pruner: Hydra usually instantiated it already (recursive instantiation); else build it here."""
    return instantiate(config) if isinstance(config, (dict, DictConfig)) else config


def _count(study: Any) -> int:
    import optuna

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=finished))


def _requeue_interrupted(study: Any) -> None:
    """Trials a crashed sweep left RUNNING: mark them failed and ask for their parameters again first."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params)
        log.info("Trial %d was interrupted: marked failed, its parameters queued again", trial.number)
