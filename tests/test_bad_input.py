"""The bad-input catalogue: every case gives one `error: ...` line and leaves the user's files as they were.

Each case runs the function an entry point decorates (`nlp_template.<entry>.main.__wrapped__`: config in, the
`exit_on_user_error` handling included) on a config composed from the case's overrides, in a directory that already
holds what a user has: an earlier run (checkpoints, metrics.json, config, tokenizer, CSV logs), the tokenization
cache that run filled, earlier predictions and an earlier export. Every file there is hashed before and after: the
failing command may add files (its own new run directory) but never change or remove one. Config errors that Hydra
raises before the decorated function runs go through the real `@hydra.main` function with a command line.

Cases marked `handled` are inputs that are not errors (texts over `max_length` are truncated and counted, empty
prediction lines are skipped and counted): they must succeed and log what they did. A few subprocess runs prove the
end-to-end behaviour: no traceback, and a traceback with `HYDRA_FULL_ERROR=1`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
import pytest
from catalogue import FILE_DATA, SAMPLE, Case, more_cases, squad_json, torch_bytes
from conftest import FAST
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from nlp_template.utils.config import compose_config, print_and_save
from nlp_template.utils.errors import UserInputError, one_line_config_errors
from nlp_template.utils.run import RUN_CONFIG_KEY

OLD_RUN = "logs/train/runs/2025-01-01_09-00-00_a1b2c3"

# ------------------------------------------------------------------------------------------------ input files
ROWS = [f"the film was {word} and long,{label}" for word, label in [("good", "pos"), ("awful", "neg")] * 20]
CSV = "text,label\n" + "\n".join(ROWS) + "\n"
FILES: dict[str, str | bytes | Callable[[Path], bytes]] = {
    "reviews.csv": CSV,
    "dev_with_new_label.csv": "text,label\ngreat,pos\nmeh,mixed\nbad,neg\n",
    "empty.csv": "",
    "latin1.csv": (CSV + "caf\xe9 cr\xe8me,pos\n").encode("latin-1"),
    "ragged.csv": "text,label\ngood,pos\nbad,neg,extra,fields\n" + "fine,pos\n" * 5,
    "mixed_labels.jsonl": "".join(
        json.dumps({"text": f"review {i}", "label": 1 if i % 2 else "neg"}) + "\n" for i in range(40)
    ),
    "empty_texts.csv": CSV + ",pos\n   ,neg\n",
    "empty_label.csv": CSV + "a film,\n",
    "long_texts.csv": "text,label\n" + "\n".join(f"{'very ' * 30}{w},{w}" for w in ["good", "bad"] * 20) + "\n",
    "broken_model/config.json": "{not json",
    "broken_model/tokenizer.json": "{not json",
    "foreign.ckpt": lambda tmp: torch_bytes({"state_dict": {}}),
    "linear.ckpt": lambda tmp: torch_bytes(
        {"state_dict": {}, RUN_CONFIG_KEY: {"model": {"_target_": "torch.nn.Linear"}, "data": {}}}
    ),
    "truncated.ckpt": lambda tmp: _old_checkpoint(tmp).read_bytes()[:4096],
    "inputs.txt": "a great film\n\nawful\n   \nfine\n",
    "inputs_latin1.txt": "a great film\ncaf\xe9 cr\xe8me\n".encode("latin-1"),
    "inputs.csv": "review,stars\ngood,5\n",
    "scores.csv": "text,label\n" + "".join(f"review {i},{v}\n" for i, v in enumerate(["1.5", "4", "hi", "2.25"] * 10)),
    "topics_dev.jsonl": json.dumps({"text": "a film", "label": ["plot", "sound"]}) + "\n",
    "topics.jsonl": "".join(
        json.dumps({"text": f"film {i}", "label": ["plot"] if i % 2 else []}) + "\n" for i in range(20)
    ),  # fmt: skip
    "qa_moved.json": lambda tmp: squad_json([("q1", "Who wrote it?", "Ann", 3)]),
    "qa_v2.json": lambda tmp: squad_json([("q1", "Who wrote it?", "Ann", 0), ("q2", "Where?", None, None)]),
    "qa_long_question.json": lambda tmp: squad_json([("q1", "why " * 40 + "?", "Ann", 0)]),
    "qa_rows.jsonl": json.dumps({"question": "Who?", "context": "Ann wrote it."}) + "\n",
}


def _old_checkpoint(tmp: Path) -> Path:
    return next((tmp / OLD_RUN / "checkpoints").glob("epoch_*.ckpt"))


# --------------------------------------------------------------------------------------------------- the table

# fmt: off
QA_DATA = ["data=squad", "model=question_answering", "data.source.holdout=null", "extras.print_config=false"]
CASES = [
    # ---- data
    Case("data-missing-column", "train", [*FILE_DATA, "data.source.train={tmp}/reviews.csv",
                                          "data.text_column=sentence"],
         r"^train split has no column 'sentence' \(data.text_column\); its columns are \['text', 'label'\]"),
    Case("data-missing-file", "train", [*FILE_DATA, "data.source.train={tmp}/nowhere.csv"],
         r"^train file not found: .*nowhere.csv \(set data.source.train"),
    Case("data-unknown-label", "train", [*FILE_DATA, "data.source.train={tmp}/reviews.csv",
                                         "data.source.validation={tmp}/dev_with_new_label.csv"],
         r"^validation split has labels not in the label set: \['mixed'\] \(label set: \['neg', 'pos'\]\)"),
    Case("data-empty-file", "train", [*FILE_DATA, "data.source.train={tmp}/empty.csv"], r"^train file is empty: "),
    Case("data-undecodable-file", "train", [*FILE_DATA, "data.source.train={tmp}/latin1.csv"],
         r"^train file .*latin1.csv line 42 is not valid UTF-8 \(byte 0xe9 at column 4\); save the file as UTF-8"),
    Case("data-malformed-csv", "train", [*FILE_DATA, "data.source.train={tmp}/ragged.csv"],
         r"^could not read train file .*ragged.csv: .*Expected 2 fields in line 3, saw 4"),
    Case("data-mixed-label-types", "train", [*FILE_DATA, "data.source.train={tmp}/mixed_labels.jsonl"],
         r"^train split: column 'label' mixes integer and string labels \(row 1: 'neg', row 2: 1\)"),
    Case("data-empty-text", "train", [*FILE_DATA, "data.source.train={tmp}/empty_texts.csv"],
         r"^train split has 2 empty text\(s\) in column 'text' at row\(s\) 41, 42 \(1 = first example\); remove those"
         r" rows or fill in their text$"),
    Case("data-empty-label", "train", [*FILE_DATA, "data.source.train={tmp}/empty_label.csv"],
         r"^train split has 1 empty label\(s\) in column 'label' at row\(s\) 41"),
    Case("data-texts-over-max-length", "data", [*FILE_DATA, "data.source.train={tmp}/long_texts.csv",
                                                "data.max_length=16"],
         r"train: \d+ of \d+ examples were truncated to max_length=16 tokens", handled=True),
    Case("data-hub-offline", "train", ["data=sst2"],
         r"^could not load data set 'nyu-mll/glue' \(sst2\) from the Hugging Face Hub: .*Offline\?"),
    # ---- configs
    Case("config-wrong-override-key", "cli-train", ["trainer.max_epoch=3"],
         r"^Could not override 'trainer.max_epoch'; trainer has no key 'max_epoch' \(did you mean"
         r" trainer.max_epochs\?\); to append to your config use \+trainer.max_epoch=3$"),
    Case("config-unknown-option", "cli-train", ["data=filez"],
         r"^Could not find 'data/filez' \(did you mean data=files\?\); available options in 'data': "),
    Case("config-misspelt-new-key", "train", [*SAMPLE, "+data.max_lenght=64"],
         r"unexpected keyword argument 'max_lenght': remove that config key or check its spelling$"),
    Case("config-missing-required-value", "train", ["data=files"],
         r"^missing required value 'data.source.train': set it on the command line"),
    Case("config-zero-batch-size", "train", [*SAMPLE, "data.batch_size=0"],
         r"^data.batch_size must be a positive integer, got 0$"),
    Case("config-negative-batch-size", "train", [*SAMPLE, "data.eval_batch_size=-8"],
         r"^data.eval_batch_size must be a positive integer, got -8$"),
    Case("config-batch-size-not-a-number", "train", [*SAMPLE, "data.batch_size=ten"],
         r"^data.batch_size must be a positive integer, got 'ten'$"),
    Case("config-unknown-batching", "train", [*SAMPLE, "data.batching=sorted"],
         r"^unknown data.batching 'sorted'; use one of \['random', 'length_grouped', 'token_budget'\]$"),
    Case("config-token-budget-without-max-tokens", "train", [*SAMPLE, "data.batching=token_budget"],
         r"^data.batching=token_budget needs data.max_tokens"),
    Case("config-max-tokens-below-one-example", "train", [*SAMPLE, "data.batching=token_budget", "data.max_tokens=8"],
         r"^data.max_tokens=8 is smaller than the longest training example \((\d+) tokens\), which would not fit"
         r" any batch; set data.max_tokens=\1 or more \(or lower data.max_length\)$"),
    Case("config-block-size-too-large", "train", ["experiment=lm_tiny", *FAST, "model.config.n_positions=64"],
         r"^data.block_size=128 is larger than the model's 64 position embeddings; lower data.block_size"),
    Case("config-validation-fraction", "train", [*FILE_DATA, "data.source.train={tmp}/reviews.csv",
                                                 "data.validation_fraction=1.5"],
         r"^data.validation_fraction must be between 0 and 1 to carve a validation split from train, got 1.5"),
    # ---- checkpoints
    Case("ckpt-missing", "eval", ["ckpt_path={tmp}/nowhere.ckpt"], r"^checkpoint not found: .*nowhere.ckpt"),
    Case("ckpt-truncated", "eval", ["ckpt_path={tmp}/truncated.ckpt"],
         r"truncated.ckpt is not a readable checkpoint"),
    Case("ckpt-not-from-nlp-train", "eval", ["ckpt_path={tmp}/foreign.ckpt"],
         r"foreign.ckpt was not written by nlp-train \(it holds no 'nlp_template_config'\)$"),
    Case("ckpt-model-of-another-project", "predict", ["ckpt_path={tmp}/linear.ckpt", "input={tmp}/inputs.txt",
                                                      "output={tmp}/new.jsonl"],
         r"linear.ckpt holds a 'torch.nn.Linear' model, which is not a task of this project"),
    Case("ckpt-of-another-task-to-resume", "train", ["experiment=lm_tiny", *FAST, "ckpt_path={ckpt}"],
         r"^.*\.ckpt is a checkpoint of TextClassifier, but this run trains CausalLM: resume it with the same"),
    Case("ckpt-of-another-shape-to-resume", "train", [*SAMPLE, "model.config.hidden_size=64", "ckpt_path={ckpt}"],
         r"^the checkpoint's weights do not fit this TextClassifier \(\d+ of another shape, e.g. network\.bert\."),
    Case("ckpt-last-without-a-match", "train", ["experiment=sentiment_lstm", *FAST, "ckpt_path=last"],
         r"^ckpt_path=last: no last.ckpt of this experiment \(same data and model config and seed\) under .*logs/"),
    # ---- regression, multi-label, question answering data
    Case("data-regression-text-target", "train", [*FILE_DATA, "data.source.train={tmp}/scores.csv",
                                                  "data.problem_type=regression"],
         r"^train split: regression needs a number in column 'label', row 3 has 'hi'; fix the data, or set"
         r" data.problem_type=single_label_classification for classes$"),
    Case("data-multilabel-unknown-label", "train", [*FILE_DATA, "data.source.train={tmp}/topics.jsonl",
                                                    "data.source.validation={tmp}/topics_dev.jsonl"],
         r"^validation split has labels not in the label set: \['sound'\]"),
    Case("qa-answer-not-at-its-start", "train", [*QA_DATA, "data.source.train={tmp}/qa_moved.json"],
         r"^train question 'q1': answer 'Ann' is not at answer_start 3 of its context \(the context has ' wr' there,"),
    Case("qa-v2-data-in-v1-mode", "train", [*QA_DATA, "data.source.train={tmp}/qa_v2.json"],
         r"^train question 'q2' has no answer: this is SQuAD v2.0-style data with unanswerable questions; set"
         r" data.version_2_with_negative=true"),
    Case("qa-question-longer-than-max-length", "train", [*QA_DATA, "data.source.train={tmp}/qa_long_question.json",
                                                         "data.source.validation={tmp}/qa_long_question.json",
                                                         "data.max_length=32", "data.doc_stride=8"],
         r"^question 'why why .* has 4\d tokens, which leaves no room for context in windows of data.max_length=32;"
         r" raise data.max_length"),
    Case("qa-missing-field", "train", ["data=squad", "model=question_answering", "~data.source.holdout",
                                       "~data.source.seed", "data.source._target_=nlp_template.data.sources.FileSource",
                                       "data.source.train={tmp}/qa_rows.jsonl"],
         r"^train split has no column 'answers' \(data.answers_column\); its columns are \['question', 'context'\]"),
    # ---- model paths
    Case("model-path-missing", "train", [*SAMPLE, "model.backbone={tmp}/models/nope", "model.pretrained=true"],
         r"^tokenizer directory does not exist: .*models/nope \(check data.tokenizer, which defaults to"
         r" model.backbone\)$"),
    Case("model-path-unreadable", "train", [*SAMPLE, "model.backbone={tmp}/broken_model", "model.pretrained=true"],
         r"^could not load tokenizer from '.*broken_model' \(is it a Hugging Face model directory\?\)"),
    Case("model-path-is-a-file", "train", [*SAMPLE, "model.backbone={ckpt}", "model.pretrained=true"],
         r"^tokenizer path is a file, not a directory: .*\.ckpt"),
    Case("model-hub-name-offline", "train", [*SAMPLE, "model.backbone=someone/no-such-model", "model.pretrained=true"],
         r"^could not load tokenizer from 'someone/no-such-model' \(offline\? pass a local directory instead\)"),
    # ---- prediction and export command lines
    Case("predict-undecodable-input", "predict", ["ckpt_path={ckpt}", "input={tmp}/inputs_latin1.txt",
                                                  "output={tmp}/new.jsonl"],
         r"inputs_latin1.txt line 2 is not valid UTF-8 \(byte 0xe9 at column 4\); save the input as UTF-8$"),
    Case("predict-input-missing-column", "predict", ["ckpt_path={ckpt}", "input={tmp}/inputs.csv",
                                                     "output={tmp}/new.jsonl"],
         r"inputs.csv line 2 has no column 'text'; it has \['review', 'stars'\]. Use \+data.text_column=<one of them>$"),  # noqa: E501
    Case("predict-output-exists", "predict", ["ckpt_path={ckpt}", "input={tmp}/inputs.txt", "output={predictions}"],
         r"^output file exists: .*predictions.jsonl; choose another output=... or set overwrite=true$"),
    Case("predict-zero-batch-size", "predict", ["ckpt_path={ckpt}", "input={tmp}/inputs.txt",
                                                "output={tmp}/new.jsonl", "batch_size=0"],
         r"^batch_size must be a positive whole number, got 0"),
    Case("predict-empty-lines", "predict", ["ckpt_path={ckpt}", "input={tmp}/inputs.txt", "output={tmp}/new.jsonl"],
         r"Skipped 2 empty line\(s\)", handled=True),
    Case("export-output-exists", "export", ["ckpt_path={ckpt}", "format=hf", "output={export}"],
         r"^output exists: .*exports/hf; choose another output=... or set overwrite=true$"),
    Case("export-unknown-format", "export", ["ckpt_path={ckpt}", "format=pdf"],
         r"^unknown export format 'pdf'; use one of \['hf', 'onnx', 'torchscript', 'executorch', 'peft'\]$"),
]
# fmt: on
EXTRA_FILES, EXTRA_CASES = more_cases()  # the bad_inputs_*.py tables
assert not FILES.keys() & EXTRA_FILES.keys(), "a table reuses a file name of this one"
FILES.update(EXTRA_FILES)
CASES += EXTRA_CASES
BY_ID = {case.id: case for case in CASES}


# ------------------------------------------------------------------------------------------- the user's files
@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real earlier run (checkpoints, metrics.json, config.yaml, tokenizer, CSV logs) and the cache it filled."""
    from nlp_template.train import train

    root = tmp_path_factory.mktemp("user")
    brief = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
             "+trainer.limit_test_batches=1", "callbacks=model_checkpoint", "logger=csv"]  # fmt: skip
    cfg = _compose("train", [*SAMPLE, *brief], root, run=OLD_RUN)
    print_and_save(cfg, cfg.paths.output_dir, show=False)
    train(cfg)
    return root


@pytest.fixture
def user(tmp_path: Path, earlier_run: Path) -> dict[str, str]:
    """tmp_path holding the user's files; returns the values of the overrides' placeholders."""
    shutil.copytree(earlier_run, tmp_path, dirs_exist_ok=True)
    (tmp_path / "predictions.jsonl").write_text('{"line": 1, "text": "earlier", "label": "pos"}\n')
    export = tmp_path / "exports" / "hf"
    export.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "export_report.json"):
        (export / name).write_bytes(os.urandom(64))
    for name, content in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        content = content(tmp_path) if callable(content) else content
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return {"tmp": str(tmp_path), "ckpt": str(_old_checkpoint(tmp_path)),
            "predictions": str(tmp_path / "predictions.jsonl"), "export": str(export)}  # fmt: skip


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `root`."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}  # fmt: skip


def assert_nothing_changed(before: dict[str, str], root: Path) -> None:
    after = snapshot(root)
    lost = sorted(path for path in before if path not in after)
    changed = sorted(path for path in before if path in after and after[path] != before[path])
    assert not lost and not changed, f"lost: {lost}, changed: {changed}"


def _compose(name: str, overrides: list[str], root: Path, run: str = "logs/{name}/runs/new") -> DictConfig:
    """The config `nlp-<name> <overrides>` composes, writing to a new run under root/logs, caching in root/cache."""
    cfg = compose_config(name, [*overrides, "extras.print_config=false"], root / run.format(name=name),
                         root / "cache", use_local=False)  # fmt: skip
    with open_dict(cfg):
        cfg.paths.log_dir = str(root / "logs")
    return cfg


def one_error_line(stderr: str) -> str:
    """The message of the only `error: ` line of `stderr`, which must be its last line; no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
    assert "Traceback" not in stderr
    return errors[0].removeprefix("error: ")


# --------------------------------------------------------------------------------------------------- the test
def _run(case: Case, overrides: list[str], root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.entry == "cli-train":  # Hydra's own errors happen in @hydra.main, before the decorated function
        from nlp_template.train import main

        argv = ["nlp-train", *overrides, f"paths.log_dir={root / 'logs'}", f"paths.cache_dir={root / 'cache'}"]
        monkeypatch.setattr(sys, "argv", argv)
        try:
            one_line_config_errors(main)()
        finally:
            GlobalHydra.instance().clear()
    elif case.entry == "data":
        hydra.utils.instantiate(_compose("train", overrides, root).data).prepare_data()
    else:
        main = importlib.import_module(f"nlp_template.{case.entry}").main.__wrapped__  # exit_on_user_error(main)
        main(_compose(case.entry, overrides, root))


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=case.marks) for case in CASES])
def test_bad_input(case, user, tmp_path, capsys, caplog, monkeypatch):
    overrides = [override.format(**user) for override in case.overrides]
    before = snapshot(tmp_path)
    assert {f"{OLD_RUN}/metrics.json", f"{OLD_RUN}/checkpoints/last.ckpt", "predictions.jsonl"} <= before.keys()
    assert any(path.startswith("cache/tokenized/") for path in before)
    if case.handled:
        with caplog.at_level("INFO"):
            _run(case, overrides, tmp_path, monkeypatch)
        assert re.search(case.expect, caplog.text), caplog.text[-2000:]
        assert "error: " not in capsys.readouterr().err
    else:
        with pytest.raises(SystemExit) as exit_info:
            _run(case, overrides, tmp_path, monkeypatch)
        assert exit_info.value.code == 1
        message = one_error_line(capsys.readouterr().err)
        assert re.search(case.expect, message), message
    assert_nothing_changed(before, tmp_path)


def test_catalogue_covers_every_kind_of_input():
    kinds = {case.id.split("-")[0] for case in CASES}
    assert {"data", "config", "ckpt", "model", "predict", "export"} <= kinds
    assert len(BY_ID) == len(CASES) >= 18


def test_full_error_shows_the_traceback_in_process(user, tmp_path, monkeypatch):
    """`HYDRA_FULL_ERROR=1`: the error propagates (Hydra prints its traceback), for ours and for Hydra's own."""
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    from nlp_template.train import main

    with pytest.raises(Exception) as raised:
        main.__wrapped__(_compose("train", [*SAMPLE, "data.batch_size=0"], tmp_path))
    chain, error = [], raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(error, UserInputError) for error in chain)
    with pytest.raises(Exception, match="Could not override 'trainer.max_epoch'"):
        _run(BY_ID["config-wrong-override-key"], ["trainer.max_epoch=3"], tmp_path, monkeypatch)


# ------------------------------------------------------------------------------------------ real command lines
def _command(module: str, *overrides: str, root: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", f"nlp_template.{module}", *overrides, f"paths.log_dir={root / 'logs'}",
               f"paths.cache_dir={root / 'cache'}", "extras.print_config=false"]  # fmt: skip
    inherited = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env = {**inherited, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize(
    "module,overrides,message",
    [
        ("train", ["data=files", "data.source.train={tmp}/mixed_labels.jsonl"], r"mixes integer and string labels"),
        (
            "predict",
            ["ckpt_path={ckpt}", "input={tmp}/inputs_latin1.txt", "output={tmp}/new.jsonl"],
            r"inputs_latin1.txt line 2 is not valid UTF-8",
        ),
    ],
    ids=["train-data-error", "predict-input-error"],
)
def test_command_line_prints_one_line_without_traceback(user, tmp_path, module, overrides, message):
    before = snapshot(tmp_path)
    result = _command(module, *(override.format(**user) for override in overrides), root=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert re.search(message, one_error_line(result.stderr))
    assert_nothing_changed(before, tmp_path)


@pytest.mark.slow
def test_command_line_with_hydra_full_error_shows_the_traceback(user, tmp_path):
    before = snapshot(tmp_path)
    result = _command("train", *SAMPLE, "data.batch_size=0", root=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "UserInputError: data.batch_size must be a positive integer, got 0" in result.stderr
    assert not any(line.startswith("error: ") for line in result.stderr.splitlines())
    assert_nothing_changed(before, tmp_path)


def test_docs_catalogue_lists_every_case():
    """The table of docs/reliability.md and the catalogue name the same cases, so neither drifts."""
    page = (Path(__file__).parents[1] / "docs" / "reliability.md").read_text()
    section = page.split("\n## Bad-input catalogue\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"\| `([a-z0-9-]+)` \|$", section, flags=re.MULTILINE))
    assert listed == set(BY_ID), (sorted(set(BY_ID) - listed), sorted(listed - set(BY_ID)))
