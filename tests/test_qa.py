"""Extractive question answering end to end: train, eval, predict, export (hf pipeline and onnx), real SQuAD data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from nlp_template.utils.config import compose_config

CONTEXT = ("Mara Quill was born in Tovenia in 1987. Mara Quill works for Brightline Freight as a pilot. Ona Vesk lives"
           " in Kesh. Ona Vesk works as a baker for Dornal Foods.")  # fmt: skip
QUESTIONS = ["Where was Mara Quill born?", "Who does Ona Vesk work for?", "What does Mara Quill work as?"]
RUN = ["experiment=qa_tiny", "extras.print_config=false", "logger=csv", "callbacks=model_checkpoint"]


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from nlp_template.train import train

    root = tmp_path_factory.mktemp("qa")
    return train(compose_config("train", RUN, root / "run", root / "cache", use_local=False))


@pytest.mark.slow
def test_qa_trains_and_evaluates_with_squad_metrics(qa_run, make_cfg):
    from nlp_template.eval import evaluate

    # Learnt to read from scratch in about a minute (an untrained span head scores about 0; README: measured).
    assert qa_run["test/f1"] > 30 and qa_run["test/exact_match"] > 25
    again = evaluate(make_cfg([f"ckpt_path={qa_run['best_model_path']}"], name="eval"))
    assert again["test/f1"] == pytest.approx(qa_run["test/f1"]) and again["test/exact_match"] == pytest.approx(
        qa_run["test/exact_match"]
    )


def _predict(make_cfg, ckpt: str, tmp_path: Path, *overrides: str) -> list[dict]:
    from nlp_template.predict import predict

    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps({"question": q, "context": CONTEXT, "id": i}) + "\n"
                            for i, q in enumerate(QUESTIONS)))  # fmt: skip
    return predict(make_cfg([f"ckpt_path={ckpt}", f"input={path}", f"output={tmp_path}/answers.jsonl", *overrides],
                            name="predict"))  # fmt: skip


@pytest.mark.slow
def test_qa_predicts_answers_with_character_offsets(qa_run, make_cfg, tmp_path):
    results = _predict(make_cfg, qa_run["best_model_path"], tmp_path)
    assert [r["line"] for r in results] == [1, 2, 3] and [r["id"] for r in results] == [0, 1, 2]
    for result in results:
        assert CONTEXT[result["start"] : result["end"]] == result["answer"] and 0 <= result["score"] <= 1
        assert result["answer"]  # v1 model: always a span
    csv_path = tmp_path / "questions.csv"
    csv_path.write_text("question,context\n" + "".join(f'"{q}","{CONTEXT}"\n' for q in QUESTIONS))
    from nlp_template.predict import predict

    from_csv = predict(make_cfg([f"ckpt_path={qa_run['best_model_path']}", f"input={csv_path}",
                                 f"output={tmp_path}/csv.jsonl"], name="predict"))  # fmt: skip
    assert [r["answer"] for r in from_csv] == [r["answer"] for r in results]


@pytest.mark.slow
def test_qa_exports_to_hf_and_onnx(qa_run, make_cfg, tmp_path):
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.pipelines import SUPPORTED_TASKS

    from nlp_template.export import export
    from nlp_template.models.qa_answers import best_answers

    ckpt = qa_run["best_model_path"]
    ours = _predict(make_cfg, ckpt, tmp_path)
    hf = export(make_cfg([f"ckpt_path={ckpt}", "format=hf", f"output={tmp_path}/hf"], name="export"))
    # The export alone (no project code but the decoding): same windows' logits -> the same answers as nlp-predict.
    tokenizer, network = AutoTokenizer.from_pretrained(hf), AutoModelForQuestionAnswering.from_pretrained(hf).eval()
    encoded = tokenizer(QUESTIONS, [CONTEXT] * 3, padding=True, return_offsets_mapping=True, return_tensors="pt")
    pairs = [
        zip(row.tolist(), encoded.sequence_ids(i), strict=True) for i, row in enumerate(encoded.pop("offset_mapping"))
    ]
    offsets = [[list(pair) if kind == 1 else [-1, -1] for pair, kind in row] for row in pairs]
    with torch.no_grad():
        output = network(**encoded)
    features = [{"example_index": i, "offset_mapping": offsets[i]} for i in range(3)]
    theirs = best_answers([CONTEXT] * 3, features, list(output.start_logits.numpy()), list(output.end_logits.numpy()))
    assert [(t["answer"], t["start"], t["end"]) for t in theirs] == [(o["answer"], o["start"], o["end"]) for o in ours]
    assert [t["score"] for t in theirs] == pytest.approx([o["score"] for o in ours], rel=1e-4)
    report = json.loads((hf / "export_report.json").read_text())
    if "question-answering" in SUPPORTED_TASKS:  # transformers 4.x; 5.x removed the question-answering pipeline
        from transformers import pipeline

        assert report["pipeline_task"] == "question-answering"
        answerer = pipeline("question-answering", model=str(hf), tokenizer=str(hf))
        for question, our in zip(QUESTIONS, ours, strict=True):
            answer = answerer(question=question, context=CONTEXT, align_to_words=False)
            assert (answer["answer"], answer["start"], answer["end"]) == (our["answer"], our["start"], our["end"])
    else:
        assert report["pipeline_task"] is None

    onnx_dir = export(make_cfg([f"ckpt_path={ckpt}", "format=onnx", f"output={tmp_path}/onnx", "latency.repeats=0"],
                               name="export"))  # fmt: skip
    report = json.loads((onnx_dir / "export_report.json").read_text())
    info = json.loads((onnx_dir / "export_info.json").read_text())
    assert report["max_abs_diff"] <= 1e-4 and info["outputs"] == ["start_logits", "end_logits"]
    assert info["doc_stride"] == 64 and info["max_length"] == 256
    import onnxruntime

    # What a service holding only the export directory gets: the same start/end logits as the checkpoint's network.
    inputs = AutoTokenizer.from_pretrained(onnx_dir)(QUESTIONS, [CONTEXT] * 3, padding=True, return_tensors="np")
    session = onnxruntime.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    starts, ends = session.run(None, {name: inputs[name].astype(np.int64) for name in info["inputs"]})
    assert np.abs(starts - output.start_logits.numpy()).max() < 1e-4
    assert np.abs(ends - output.end_logits.numpy()).max() < 1e-4


@pytest.mark.slow
def test_qa_on_a_real_squad_article_with_minilm(minilm, make_cfg):
    """One SQuAD v1.1 article (../shared/data/squad_sample), whole paragraphs held out, MiniLM fine-tuned."""
    path = SHARED_DATA / "squad_sample" / "train.json"
    if not path.is_file():
        pytest.skip("../shared/data/squad_sample is not available")
    from nlp_template.train import train

    overrides = ["experiment=qa_squad_minilm", f"model.backbone={minilm}", f"data.source.train={path}",
                 "data.source.holdout={validation: 0.2, test: 0.2}", "data.max_length=256", "data.doc_stride=64",
                 "trainer.max_epochs=10", "model.optimizer.lr=2e-4", "extras.print_config=false", "logger=csv",
                 "callbacks=model_checkpoint"]  # fmt: skip
    metrics = train(make_cfg(overrides))
    # Measured on the 2-core machine (README task table): test F1 33.2, EM 20.4 after 10 epochs over the ~160
    # training questions, from a sentence-embedding model whose span head starts untrained (3 epochs: F1 9.7).
    assert metrics["test/f1"] > 20 and metrics["test/exact_match"] > 10, metrics
