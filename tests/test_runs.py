"""Where a run reads and writes: the project root, the saved config that reproduces a run, secret redaction, and
`nlp-eval` reading a checkpoint's data where its training run read it (docs/runs.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST

from nlp_template.eval import evaluate
from nlp_template.train import train
from nlp_template.utils.checks import check_types, preflight
from nlp_template.utils.config import (
    PACKAGE_CLONE,
    PROJECT_ROOT,
    ROOT_ENV,
    ROOT_MARKER,
    compose_config,
    compose_saved_config,
    find_project_root,
    print_and_save,
    redact,
)
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.run import RUN_CONFIG_KEY

# A real run in a few seconds: two training batches, one validation and one test batch.
BRIEF = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
         "+trainer.limit_test_batches=1", "extras.print_config=false"]  # fmt: skip
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def scores(metrics: dict) -> dict:
    """The metrics that must repeat exactly (not the time taken or the checkpoint's path)."""
    return {key: value for key, value in metrics.items() if "/" in key}


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


# --------------------------------------------------------------------------------------------- secrets
SUFFIXED = ["github_token", "openai_api_key", "aws_session_token", "db_password", "mlflow_tracking_password",
            "aws_secret_access_key", "wandb_api_key", "apikey", "credentials"]  # fmt: skip


def test_only_secret_names_are_redacted():
    config = {
        "data": {"source": {"token_column": 0, "tag_column": -1}, "max_tokens": 4096, "tokenizer": "bert",
                 "pad_token_id": 0, "tokenizer_type": "wordpiece"},
        "logger": {"wandb": {"api_key": "k", "token": None}, "mlflow": {"password": ""}},
        "HF_TOKEN": "hf_x", "Secret": "s", "auth": [{"client_secret": "c", "access_token": "a"}],
        "more": {name: "x" for name in SUFFIXED},
    }  # fmt: skip
    assert redact(config) == {
        "data": config["data"],  # settings whose names contain "token" are not secrets
        "logger": {"wandb": {"api_key": "***", "token": None}, "mlflow": {"password": ""}},  # nothing to hide
        "HF_TOKEN": "***", "Secret": "***", "auth": [{"client_secret": "***", "access_token": "***"}],
        "more": dict.fromkeys(SUFFIXED, "***"),  # any key that ends in a secret word
    }  # fmt: skip


# ------------------------------------------------------------------------------------ saved config re-runs
def conll_data(data_dir: Path) -> Path:
    """data/conll/{train,valid,test}.txt (word POS chunk tag), from the embedded entity generator."""
    from nlp_template.data.samples.entities import EntitySamples

    (data_dir / "conll").mkdir(parents=True)
    splits = EntitySamples(num_train=48, num_validation=16, num_test=16).load()
    for name, split in [("train", "train"), ("valid", "validation"), ("test", "test")]:
        lines = []
        for row in splits[split]:
            lines += [f"{word} NN O {tag}" for word, tag in zip(row["tokens"], row["tags"], strict=True)] + [""]
        (data_dir / "conll" / f"{name}.txt").write_text("\n".join(lines))
    return data_dir


@pytest.mark.task("token_classification")
def test_a_saved_config_reruns_its_run(tmp_path, shared_cache):
    """config.yaml of a CoNLL run (`data.source.token_column: 0`) trains the same model again, in a new directory."""
    overrides = ["experiment=ner_conll", f"paths.data_dir={conll_data(tmp_path / 'data')}", *BRIEF, "callbacks=none",
                 "+trainer.enable_checkpointing=false", "data.vocab_size=200"]  # fmt: skip
    cfg = compose_config("train", overrides, tmp_path / "first", shared_cache, use_local=False)
    print_and_save(cfg, cfg.paths.output_dir, show=False)  # as nlp-train does
    first = train(cfg)
    saved = (tmp_path / "first" / "config.yaml").read_text()
    assert re.search(r"^    token_column: 0$", saved, re.MULTILINE), saved
    assert "dirpath" not in saved and "default_root_dir: ${paths.output_dir}" in saved  # the run dir left open
    before = snapshot(tmp_path / "first")

    again = compose_saved_config(tmp_path / "first", [], tmp_path / "second")
    second = train(again)
    assert scores(second) == scores(first) and scores(first)
    assert (tmp_path / "second" / "metrics.json").is_file() and (tmp_path / "second" / "tokenizer").is_dir()
    assert snapshot(tmp_path / "first") == before  # nothing of the first run was written over


def test_a_run_directory_that_holds_a_finished_run_is_refused_before_anything_is_written(tmp_path, capsys):
    """`hydra.run.dir=<a finished run>`: one line at the start, not a traceback after the training."""
    from nlp_template.train import main

    run_dir = tmp_path / "finished"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"test/acc": 0.9}')
    (run_dir / "config.yaml").write_text("theirs\n")
    cfg = compose_config("train", [*FAST, "extras.print_config=false"], run_dir, tmp_path / "cache", use_local=False)
    with pytest.raises(SystemExit):
        main.__wrapped__(cfg)
    assert "holds a finished run (metrics.json); choose another hydra.run.dir" in capsys.readouterr().err
    assert (run_dir / "config.yaml").read_text() == "theirs\n" and sorted(p.name for p in run_dir.iterdir()) == [
        "config.yaml", "metrics.json"]  # fmt: skip


def test_a_run_directory_without_config_is_refused(tmp_path):
    with pytest.raises(UserInputError, match=r"no config.yaml in .*: give the directory of a run"):
        compose_saved_config(tmp_path, [], tmp_path / "new")


@pytest.mark.slow
def test_the_command_line_reruns_a_saved_config(tmp_path, shared_cache):
    """`nlp-train --config-dir=<run dir> --config-name=config +hydra=default`: same scores, a new run directory."""
    overrides = ["debug=fdr", *FAST, f"paths.log_dir={tmp_path / 'logs'}"]
    cfg = compose_config("train", overrides, tmp_path / "logs/train/runs/first", shared_cache, use_local=False)
    with_logs = cfg.copy()
    with_logs.paths.log_dir = str(tmp_path / "logs")
    print_and_save(with_logs, with_logs.paths.output_dir, show=False)
    first = train(with_logs)
    command = [sys.executable, "-m", "nlp_template.train", f"--config-dir={tmp_path / 'logs/train/runs/first'}",
               "--config-name=config", "+hydra=default"]  # fmt: skip
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(re.search(r"Run directory: (.+)", done.stdout).group(1))
    assert run_dir.parent == tmp_path / "logs" / "debug" / "runs"  # the saved task name and log folder
    assert scores(json.loads((run_dir / "metrics.json").read_text())) == scores(first)


# -------------------------------------------------------------------------- eval reads the run's own data
WORDS = [("good", "pos"), ("awful", "neg"), ("fine", "pos"), ("dull", "neg")] * 10
ROWS = [(f"the film was {word} and {'very ' * (i % 4)}long", label) for i, (word, label) in enumerate(WORDS)]


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in rows))
    return path


def test_eval_reads_relative_data_paths_where_the_training_run_started(tmp_path, monkeypatch, caplog):
    """Trained in a/ on data/test.csv, evaluated from b/, which has a data/test.csv of its own (labels flipped)."""
    a, b = tmp_path / "a", tmp_path / "b"
    write_csv(a / "data" / "train.csv", ROWS)
    own_test = write_csv(a / "data" / "test.csv", ROWS[:20])
    flip = {"pos": "neg", "neg": "pos"}
    write_csv(b / "data" / "test.csv", [(text, flip[label]) for text, label in ROWS[:20]])
    write_csv(b / "data" / "train.csv", ROWS[::-1])

    def cfg(name: str, overrides: list[str], run: str):
        return compose_config(name, overrides, tmp_path / run, tmp_path / "cache", use_local=False)

    monkeypatch.chdir(a)
    files = ["data=files", "data.source.train=data/train.csv", "data.source.test=data/test.csv", "data.vocab_size=100"]
    trained = train(cfg("train", [*files, *BRIEF, "callbacks=model_checkpoint"], "trained"))
    assert json.loads((tmp_path / "trained" / "run.json").read_text())["work_dir"] == str(a)
    ckpt = trained["best_model_path"]

    monkeypatch.chdir(b)
    evaluated = evaluate(cfg("eval", [f"ckpt_path={ckpt}"], "eval_a"))
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    written = json.loads((tmp_path / "eval_a" / "metrics.json").read_text())
    digest = hashlib.sha256(own_test.read_bytes()).hexdigest()
    assert written["data_files"]["test"] == {"path": str(own_test), "sha256": digest}
    assert written["data_files"]["train"]["path"] == str(a / "data" / "train.csv")

    # A path typed on the eval command line is the user's: relative to where nlp-eval runs.
    override = evaluate(cfg("eval", [f"ckpt_path={ckpt}", "+data.source.test=data/test.csv"], "eval_b"))
    assert override["test/acc"] == pytest.approx(1 - trained["test/acc"], abs=1e-6)  # every label flipped
    assert override["data_files"]["test"]["path"] == str(b / "data" / "test.csv")

    # A checkpoint written before the directory was stored: the current directory, with one warning.
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    del checkpoint[RUN_CONFIG_KEY]["work_dir"]
    torch.save(checkpoint, tmp_path / "older.ckpt")
    with caplog.at_level(logging.WARNING, logger="nlp_template.inference.checkpoints"):
        older = evaluate(cfg("eval", [f"ckpt_path={tmp_path / 'older.ckpt'}"], "eval_c"))
    warnings = [r.getMessage() for r in caplog.records if r.name == "nlp_template.inference.checkpoints"]
    assert len(warnings) == 1 and "does not say which directory its run started in" in warnings[0], warnings
    assert older["data_files"]["test"]["path"] == str(b / "data" / "test.csv")
    assert older["test/acc"] == pytest.approx(1 - trained["test/acc"], abs=1e-6)


def test_relative_tokenizer_path_of_a_checkpoint_is_read_in_the_run_directory(tmp_path):
    from nlp_template.inference.checkpoints import tokenizer_location

    (tmp_path / "models" / "tok").mkdir(parents=True)
    ckpt = tmp_path / "elsewhere" / "checkpoints" / "x.ckpt"
    assert tokenizer_location("models/tok", ckpt, str(tmp_path)) == str(tmp_path / "models" / "tok")
    assert tokenizer_location("bert-base-uncased", ckpt, str(tmp_path)) == "bert-base-uncased"  # a Hub id


# ---------------------------------------------------------------------------------------- project root
@pytest.fixture
def clone_b(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A second clone sharing this virtual environment: its own conf/ (trainer logging every 3 steps, a model config
    without `backbone` that only it has), the root marker, no code of its own."""
    root = tmp_path / "clone_b"
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf")
    (root / ROOT_MARKER).write_text("")
    trainer = root / "conf" / "trainer" / "default.yaml"
    trainer.write_text(re.sub(r"^log_every_n_steps: \d+$", "log_every_n_steps: 3", trainer.read_text(), flags=re.M))
    model = (root / "conf" / "model" / "text_classifier.yaml").read_text()
    (root / "conf" / "model" / "custom.yaml").write_text(re.sub(r"^backbone: .*\n", "", model, flags=re.MULTILINE))
    monkeypatch.delenv(ROOT_ENV, raising=False)
    return root


def test_the_project_root_is_the_clone_around_the_working_directory(clone_b, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(clone_b / "conf" / "model")  # anywhere inside the clone
    with caplog.at_level(logging.WARNING):
        assert find_project_root() == clone_b
    assert f"its conf/, logs/ and .cache/ are used, its src/ is not (pip install -e {clone_b}" in caplog.text
    cfg = compose_config("train", ["model=custom", "debug=fdr", *FAST], tmp_path / "run", tmp_path / "cache",
                         use_local=False)  # fmt: skip
    assert cfg.paths.root_dir == str(clone_b) and cfg.paths.data_dir == str(clone_b / "data")
    assert cfg.trainer.log_every_n_steps == 3  # clone B's trainer default, not this clone's
    # A model config without `backbone`: the tokenizer is trained (data.tokenizer selects a missing key as null).
    assert "backbone" not in cfg.model and cfg.data.tokenizer is None
    preflight(cfg)
    assert train(cfg)["val/acc"] is not None


def test_the_environment_variable_chooses_the_root(clone_b, tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv(ROOT_ENV, str(clone_b))
    assert find_project_root() == clone_b
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "elsewhere"))  # no conf/ there
    with pytest.raises(UserInputError, match=rf"^{ROOT_ENV}=.*elsewhere is not a project root \(it has no conf/"):
        find_project_root()


def test_a_bad_root_variable_is_one_line_at_start(tmp_path):
    env = {**ENV, ROOT_ENV: str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import nlp_template.utils.config"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == f"error: {ROOT_ENV}={tmp_path} is not a project root (it has no conf/ folder); point it at" \
                          " a clone of this project or unset it (the root is then the clone around the working" \
                          " directory)\n"  # fmt: skip


def test_outside_any_project_the_installed_clone_is_used_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert not any((folder / ROOT_MARKER).exists() for folder in (tmp_path, *tmp_path.parents))
    with caplog.at_level(logging.WARNING):
        assert find_project_root() == PACKAGE_CLONE == PROJECT_ROOT
    assert f"{tmp_path} is in no project (no {ROOT_MARKER} in it or above it)" in caplog.text


@pytest.mark.slow
def test_a_command_in_a_second_clone_uses_its_conf_and_writes_its_logs(clone_b):
    """The reproduction: a second clone sharing the first one's environment used the first one's conf/ and logs/."""
    ours = sorted((PROJECT_ROOT / "logs" / "train" / "runs").glob("*"))
    command = [sys.executable, "-m", "nlp_template.train", "model=custom", "trainer.max_epochs=abc"]
    done = subprocess.run(command, cwd=clone_b, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1  # model=custom exists only in clone B; the bad value stops it before any work
    assert done.stderr.splitlines()[-1] == "error: trainer.max_epochs must be a whole number, got 'abc'; e.g." \
                                           " trainer.max_epochs=10", done.stderr  # fmt: skip
    assert f"warning: project root {clone_b} is not the clone whose code runs" in done.stderr
    runs = list((clone_b / "logs" / "train" / "runs").glob("*/.hydra/config.yaml"))
    assert len(runs) == 1 and "custom" in (runs[0].parent / "overrides.yaml").read_text()
    assert sorted((PROJECT_ROOT / "logs" / "train" / "runs").glob("*")) == ours


# ------------------------------------------------------------------------------------ valid configs pass
EXPERIMENTS = sorted(path.stem for path in (PROJECT_ROOT / "conf" / "experiment").glob("*.yaml"))
TRAINERS = sorted(path.stem for path in (PROJECT_ROOT / "conf" / "trainer").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_shipped_experiment_passes_the_preflight_checks(experiment, tmp_path):
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path / "run", tmp_path / "cache", use_local=False)
    preflight(cfg)
    assert check_types(cfg) >= 20  # trainer, model, optimizer, scheduler and callback settings were compared


@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_trainer_config_has_valid_types(trainer, tmp_path):
    # Types only: the accelerator check refuses GPU configs on a machine without one, by design.
    cfg = compose_config("train", [f"trainer={trainer}"], tmp_path / "run", tmp_path / "cache", use_local=False)
    assert check_types(cfg) >= 10


def test_roberta_positions_leave_out_the_padding_offset(tmp_path):
    # roberta-base has 514 position embeddings but holds 512 tokens (its positions start after the padding index).
    model = ["model.config.model_type=roberta", "model.config.max_position_embeddings=514"]
    cfg = compose_config("train", [*model, "data.max_length=513"], tmp_path / "run", tmp_path / "cache",
                         use_local=False)  # fmt: skip
    with pytest.raises(UserInputError, match=r"^data.max_length=513 is larger than the model's 512 position embed"):
        preflight(cfg)
    preflight(compose_config("train", [*model, "data.max_length=512"], tmp_path / "ok", tmp_path / "cache",
                             use_local=False))  # fmt: skip
