"""notebooks/01_quickstart.ipynb runs top to bottom (FAST mode, in a real kernel) and is committed without outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

from nlp_template.utils.config import PROJECT_ROOT

QUICKSTART = PROJECT_ROOT / "notebooks" / "01_quickstart.ipynb"
SUMMARY_PREFIX = "QUICKSTART_SUMMARY "


def execute(path: Path, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell in a fresh `python3` kernel (this interpreter: jupyter_client launches `sys.executable`)."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def summary_of(notebook: nbformat.NotebookNode) -> dict:
    """The JSON line the last cell prints; fails on any cell error."""
    assert not [output for output in outputs(notebook) if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs(notebook) if output.output_type == "stream")
    lines = [line for line in text.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert len(lines) == 1, "the last cell prints one summary line"
    return json.loads(lines[0].removeprefix(SUMMARY_PREFIX))


@pytest.mark.slow
def test_quickstart_trains_exports_and_predicts_then_reloads_the_run(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    # The kernel inherits this environment: a quick run in tmp_path, offline, without the developer's conf/local.
    monkeypatch.setenv("QUICKSTART_RUN_DIR", str(run_dir))
    monkeypatch.setenv("QUICKSTART_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QUICKSTART_FAST", "1")
    monkeypatch.setenv("QUICKSTART_USE_LOCAL", "0")
    monkeypatch.delenv("QUICKSTART_CKPT", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")

    notebook = execute(QUICKSTART, tmp_path)
    summary = summary_of(notebook)
    assert summary["python_prefix"] == sys.prefix  # the kernel ran in this environment (the project's venv)
    assert summary["trained"] and summary["run_dir"] == summary["train_dir"] == str(run_dir)

    checkpoint = Path(summary["checkpoint"])
    assert checkpoint.is_file() and checkpoint.parent == run_dir / "checkpoints"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    for name in ("config.yaml", "metrics.json", "csv/metrics.csv", "confusion_matrix.csv", "test_predictions.jsonl"):
        assert (run_dir / name).is_file(), name
    assert 0.0 <= summary["test_acc"] <= 1.0

    export_dir = Path(summary["export_dir"])
    assert export_dir == run_dir / "hf"
    assert (export_dir / "model.safetensors").is_file() and (export_dir / "config.json").is_file()
    labels = set(json.loads((export_dir / "config.json").read_text())["label2id"])
    assert labels == {"negative", "positive"}
    assert len(summary["predictions"]) == 5
    assert all(row["prediction"] in labels and row["text"] for row in summary["predictions"])
    # The curves and the confusion matrix are drawn inline (the training callback's Agg backend does not stick).
    assert sum("image/png" in output.get("data", {}) for output in outputs(notebook)) == 2

    # QUICKSTART_CKPT: the same notebook reads that run instead of training, and exports to its own directory.
    monkeypatch.setenv("QUICKSTART_CKPT", str(checkpoint))
    monkeypatch.setenv("QUICKSTART_RUN_DIR", str(tmp_path / "loaded"))
    before = {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")}
    reloaded = summary_of(execute(QUICKSTART, tmp_path))
    assert {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")} == before  # the loaded run is only read
    assert not reloaded["trained"]
    assert reloaded["train_dir"] == str(run_dir) and reloaded["checkpoint"] == str(checkpoint)
    assert reloaded["test_acc"] == summary["test_acc"]
    assert (tmp_path / "loaded" / "hf" / "model.safetensors").is_file()
    assert reloaded["predictions"] == summary["predictions"]  # the same weights


def test_quickstart_is_committed_without_outputs():
    notebook = nbformat.read(QUICKSTART, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    dirty = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]  # fmt: skip
    assert not dirty, (
        f"cells {dirty} of {QUICKSTART.name} keep outputs or execution counts: clear them before committing"
        " (Jupyter: Edit > Clear Outputs of All Cells, then save)"
    )
