"""DDP under Hydra: relaunch children as *this job*, and leave no distributed state behind between sweep jobs.

Lightning's subprocess launcher starts ranks 1..N-1 by re-running the script with `sys.argv` plus
`hydra.run.dir=<run dir>`. In a single run that is right. Under `-m` it is wrong twice over: `sys.argv` still holds
`-m` and the sweep, so each child runs a sweep of its own (with Optuna: other hyperparameters, then a shape
mismatch), and `hydra.run.dir` is not where the job writes (`hydra.sweep.dir/<subdir>`). `hydra_job_command` builds
the child's command from the job's own task overrides and output directory instead, without `-m`.

Hydra's basic launcher runs sweep jobs one after another in the same process. Lightning leaves the process group
and its rank variables (`LOCAL_RANK`, `WORLD_SIZE`, ...) behind, and the next job would then believe it was
launched by an external launcher and never start its children. `clean_distributed_state` puts them back.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence

import torch.distributed

# Variables Lightning's launcher sets in the main process.
DDP_ENV_VARS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK", "PL_GLOBAL_SEED")


def hydra_job_command(local_rank: int) -> tuple[Sequence[str], str]:
    """Command and working directory that start rank `local_rank` of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd, to_absolute_path

    import __main__

    config = HydraConfig.get()
    if __main__.__spec__ is None:  # started as a script path
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += list(config.overrides.task)  # this job's overrides, sweep values already chosen
    # Extra config folders given on the command line: the child composes the same config (the other hydra.*
    # overrides concern the sweep or launcher, which the child does not run).
    command += [o for o in config.overrides.hydra if o.split("=")[0].lstrip("+~") == "hydra.searchpath"]
    command += [
        f'hydra.run.dir="{config.runtime.output_dir}"',
        f"hydra.job.name={config.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",  # the main process already saved the job's config
    ]
    return command, get_original_cwd()


def install_hydra_ddp_fix() -> None:
    """Make Lightning's subprocess launcher use `hydra_job_command` (safe to call more than once)."""
    from lightning.pytorch.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = hydra_job_command


@contextlib.contextmanager
def clean_distributed_state() -> Iterator[None]:
    """Restore the rank variables and destroy the process group a job created, so the next sweep job starts clean.

    Variables that were set before the job (by torchrun or SLURM) are left as they were.
    """
    before = {name: os.environ.get(name) for name in DDP_ENV_VARS}
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def layer_classes(names: Sequence[str]) -> set[type]:
    """The classes named by dotted paths that can be imported (FSDP's `auto_wrap_policy` takes a set of classes).

    Names whose module is missing are skipped, so one list can name layers of several model families.
    """
    import importlib

    classes = set()
    for name in names:
        module, _, attribute = name.rpartition(".")
        with contextlib.suppress(ImportError, AttributeError):
            classes.add(getattr(importlib.import_module(module), attribute))
    if not classes:
        raise ValueError(f"none of the layer classes {list(names)} could be imported")
    return classes
