"""`nlp-predict`: every task's checkpoint predicts on raw inputs; input formats; bad input; outputs kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlp_template.predict import predict
from nlp_template.utils.config import PROJECT_ROOT
from nlp_template.utils.errors import UserInputError
from nlp_template.utils.run import RUN_CONFIG_KEY


def run(make_cfg, ckpt: str, input_path: Path, *overrides: str) -> list[dict]:
    output = input_path.parent / f"{input_path.name}.predictions.jsonl"
    cfg = make_cfg([f"ckpt_path={ckpt}", f"input={input_path}", f"output={output}", *overrides], name="predict")
    results = predict(cfg)
    assert [json.loads(line) for line in output.read_text().splitlines()] == results
    return results


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["sentiment_tiny", "sentiment_lstm"])
def test_classification_from_text_lines(make_cfg, checkpoints, tmp_path, experiment):
    path = tmp_path / "reviews.txt"
    path.write_text("the plot is great .\n\nthe acting was awful and the ending was dull .\n" + "word " * 500 + "\n")
    results = run(make_cfg, checkpoints[experiment], path)
    assert [r["line"] for r in results] == [1, 3, 4]  # the empty line is skipped, line numbers kept
    for result in results:
        assert result["label"] in ("negative", "positive")
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    assert results[2]["truncated"] is True and "truncated" not in results[0]


@pytest.mark.slow
def test_pairs_from_jsonl_and_csv(make_cfg, checkpoints, tmp_path):
    rows = [{"premise": "the plot is good .", "hypothesis": "the plot is not bad .", "id": 7}]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps(row) for row in rows))
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("premise,hypothesis\nthe plot is good .,the plot is not bad .\n")
    from_jsonl = run(make_cfg, checkpoints["pairs_tiny"], jsonl)
    from_csv = run(make_cfg, checkpoints["pairs_tiny"], csv_path)
    assert from_jsonl[0]["label"] in ("entailment", "neutral", "contradiction")
    assert from_jsonl[0]["probabilities"] == pytest.approx(from_csv[0]["probabilities"])
    assert from_csv[0]["line"] == 2  # after the header
    lines = tmp_path / "pairs.txt"
    lines.write_text("a single sentence .\n")
    with pytest.raises(UserInputError, match="this model reads .premise. and .hypothesis. per example"):
        run(make_cfg, checkpoints["pairs_tiny"], lines)


@pytest.mark.slow
@pytest.mark.task("token_classification")
def test_entities_with_character_offsets(make_cfg, checkpoints, tmp_path):
    path = tmp_path / "sentences.txt"
    text = "Lena Brenner moved to  Lake Morven with Harbor Institute ."
    path.write_text(text + "\n")
    (result,) = run(make_cfg, checkpoints["ner_tiny"], path)
    assert len(result["tags"]) == len(text.split())  # one tag per word
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]  # offsets point into the input
        assert entity["type"] in ("PER", "ORG", "LOC")


@pytest.mark.slow
@pytest.mark.task("language_modeling")
def test_language_model_continuations(make_cfg, checkpoints, tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("the movie was\ni found the plot\n")
    greedy = run(make_cfg, checkpoints["lm_tiny"], path, "+settings.max_new_tokens=12")
    again = run(make_cfg, checkpoints["lm_tiny"], path, "+settings.max_new_tokens=12", "overwrite=true")
    assert [r["continuation"] for r in greedy] == [r["continuation"] for r in again]  # greedy is deterministic
    assert all(0 < len(r["continuation"]) <= 12 for r in greedy)  # one character per token


def test_bad_input_is_reported_in_one_line(make_cfg, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nbro\xffken\n")
    from nlp_template.inference.inputs import read_records

    with pytest.raises(UserInputError, match="bad.txt line 2 is not valid UTF-8"):
        read_records(str(bad), ["text"])
    table = tmp_path / "rows.csv"
    table.write_text("review,stars\ngood,5\n")
    with pytest.raises(UserInputError, match=r"line 2 has no column 'text'; it has \['review', 'stars'\]"):
        read_records(str(table), ["text"])
    with pytest.raises(UserInputError, match="checkpoint not found"):
        predict(make_cfg(["ckpt_path=/nowhere/model.ckpt", f"input={bad}", f"output={tmp_path}/out.jsonl"],
                         name="predict"))  # fmt: skip
    # Checkpoints of other Lightning projects: without our run config, or with a model that is not one of our tasks.
    foreign, other_task = tmp_path / "foreign.ckpt", tmp_path / "other_task.ckpt"
    torch.save({"state_dict": {}}, foreign)
    torch.save({"state_dict": {}, RUN_CONFIG_KEY: {"model": {"_target_": "torch.nn.Linear"}, "data": {}}}, other_task)
    for ckpt, message in [(foreign, "was not written by nlp-train"), (other_task, "'torch.nn.Linear' model, which is"
                          " not a task of this project")]:  # fmt: skip
        with pytest.raises(UserInputError, match=message):
            predict(make_cfg([f"ckpt_path={ckpt}", f"input={bad}", f"output={tmp_path}/out.jsonl"], name="predict"))


def test_existing_output_is_kept(make_cfg, tmp_path):
    output = tmp_path / "predictions.jsonl"
    output.write_text("earlier results\n")
    with pytest.raises(UserInputError, match="output file exists"):
        predict(make_cfg(["ckpt_path=x.ckpt", "input=-", f"output={output}"], name="predict"))
    assert output.read_text() == "earlier results\n"


@pytest.mark.slow
def test_command_line_reads_standard_input(checkpoints, tmp_path):
    command = [sys.executable, "-m", "nlp_template.predict", f"ckpt_path={checkpoints['sentiment_tiny']}", "input=-",
               "output=-", f"hydra.run.dir={tmp_path}/run", "extras.print_config=false"]  # fmt: skip
    done = subprocess.run(command, cwd=PROJECT_ROOT, input="a great film .\n", capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert line["text"] == "a great film ." and line["label"] in ("negative", "positive")
