"""`make strip KEEP=...` (tools/strip.py): what it removes, what it refuses, and that what is left passes its tests."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, STRIPPED

pytestmark = pytest.mark.skipif(bool(STRIPPED), reason="this project is already stripped")


def load_strip():
    spec = importlib.util.spec_from_file_location("strip", ROOT / "tools" / "strip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def relative(paths: list[Path]) -> set[str]:
    return {str(path.relative_to(ROOT)) for path in paths}


def test_a_file_stays_while_a_kept_task_uses_it():
    strip = load_strip()
    files, configs = strip.plan({"text_classification", "language_modeling"})
    removed = relative(files)
    assert "src/nlp_template/data/samples/sentiment.py" not in removed  # the language model's embedded corpus
    assert {"src/nlp_template/data/token_classification.py", "conf/experiment/ner_tiny.yaml",
            "tests/test_qa.py", "src/nlp_template/metrics/squad.py"} <= removed  # fmt: skip
    assert not removed & {"src/nlp_template/models/causal_lm.py", "conf/experiment/lm_tiny.yaml", "tests/test_lm.py"}
    assert configs["experiment"] == ["ner_tiny", "ner_conll", "translation_tiny", "translation_multi30k", "sft_tiny",
                                     "mlm_tiny", "choices_tiny", "qa_tiny", "qa_squad_minilm"]  # fmt: skip


def test_every_listed_file_exists_and_no_task_file_is_unlisted():
    """The manifest is complete: each task's modules and configs are listed, so nothing of a removed task stays."""
    strip = load_strip()
    for task in strip.TASKS.values():
        for file in task["files"]:
            assert (ROOT / file).is_file(), file
        for group, names in task["configs"].items():
            for name in names:
                assert (ROOT / "conf" / group / f"{name}.yaml").is_file(), (group, name)
    listed = {name for task in strip.TASKS.values() for name in task["configs"].get("experiment", [])}
    assert listed == {path.stem for path in (ROOT / "conf" / "experiment").glob("*.yaml")}


def run_strip(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tools/strip.py", *args], cwd=directory, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def copy_project(destination: Path) -> Path:
    """The project's tracked and new files (not .venv, logs, caches) in a fresh git repository."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    for name in listed:
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):  # fmt: skip
        subprocess.run(command, cwd=destination, check=True, capture_output=True)
    return destination


@pytest.mark.slow
def test_strip_leaves_a_project_whose_tests_pass(tmp_path):
    project = copy_project(tmp_path / "project")
    unknown = run_strip(project, "--keep", "text_classification", "ner")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: unknown task(s) ['ner']; KEEP takes names from ['chat', 'language_")
    (project / "README.md").write_text("edited\n")
    dirty = run_strip(project, "--keep", "text_classification")
    assert dirty.returncode == 1 and "uncommitted changes" in dirty.stderr
    subprocess.run(["git", "checkout", "README.md"], cwd=project, check=True)

    result = run_strip(project, "--keep", "text_classification")
    assert result.returncode == 0, result.stderr
    removed = ["chat", "language_modeling", "masked_lm", "multiple_choice", "question_answering", "seq2seq",
               "token_classification"]  # fmt: skip
    assert f"Removed tasks {removed}" in result.stdout
    assert not (project / "src/nlp_template/models/token_classifier.py").exists()
    assert json.loads((project / ".stripped.json").read_text())["removed"] == removed
    again = run_strip(project, "--keep", "text_classification")
    assert again.returncode == 0 and again.stdout.startswith("Nothing to remove")

    # The stripped project's own quick tests, on its own code (PYTHONPATH before this checkout's editable install).
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "NLP_TEMPLATE_ROOT": str(project)}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-x", "-p", "no:cacheprovider"],
                           cwd=project, env=env, capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
    summary = tests.stdout.strip().splitlines()[-1]
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in summary and "deselected" in summary and "failed" not in summary
