"""`nlp-serve`: the HTTP server answers as `nlp-predict` does, batches concurrent requests, refuses bad ones alone.

The app is tested in-process (FastAPI's test client) and for real: a server subprocess on a free 127.0.0.1 port
under a bounded concurrent load (a fixed number of requests, each loop with a deadline), then stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402

from nlp_template.serving.app import create_app  # noqa: E402
from nlp_template.serving.batcher import MicroBatcher  # noqa: E402
from nlp_template.serving.predictor import load_predictor  # noqa: E402

pytestmark = pytest.mark.slow
TEXTS = ["the plot is great .", "the acting was awful and the ending was dull .", "far from brilliant .",
         "the music is superb , but the story is not good ."]  # fmt: skip


def expected(make_cfg, ckpt: str, tmp_path: Path, records: list[dict]) -> list[dict]:
    """nlp-predict's results for `records` (without its `line` field)."""
    from nlp_template.predict import predict

    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    cfg = make_cfg([f"ckpt_path={ckpt}", f"input={path}", f"output={tmp_path / 'out.jsonl'}", "overwrite=true"],
                   name="predict")  # fmt: skip
    return [{key: value for key, value in result.items() if key != "line"} for result in predict(cfg)]


def same(served: dict, predicted: dict) -> bool:
    """Equal labels and inputs; probabilities to 1e-5 (another batch composition pads differently)."""
    if set(served) != set(predicted) or served.get("label") != predicted.get("label"):
        return False
    probabilities = served.get("probabilities")
    if probabilities is None:
        return served == predicted
    return all(abs(probabilities[k] - predicted["probabilities"][k]) < 1e-5 for k in probabilities)


def test_the_app_answers_like_nlp_predict_and_refuses_bad_bodies_one_by_one(make_cfg, checkpoints, tmp_path):
    ckpt = checkpoints["sentiment_tiny"]
    records = [{"text": text, "id": i} for i, text in enumerate(TEXTS)]
    reference = expected(make_cfg, ckpt, tmp_path, records)
    app = create_app(load_predictor(ckpt, None), max_batch_size=8, batch_timeout=0.005, max_body_bytes=2000)
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        info = client.get("/info").json()
        assert info["task"] == "TextClassifier" and info["inputs"] == ["text"] and info["backend"] == "pytorch"
        assert info["labels"] == ["negative", "positive"] and info["max_length"] and len(info["model_version"]) == 12
        many = client.post("/predict", json=records)
        assert many.status_code == 200 and all(map(same, many.json(), reference))
        one = client.post("/predict", json=records[1])
        assert one.status_code == 200 and same(one.json(), reference[1])  # an object in, an object out
        bad = {
            "missing column": (json.dumps({"review": "good"}).encode(), 422, "has no column 'text'"),
            "wrong type": (json.dumps({"text": 5}).encode(), 422, "must hold a string per record"),
            "not UTF-8": (b'{"text": "caf\xe9"}', 422, "is not valid UTF-8"),
            "not JSON": (b"{text: good", 422, "is not valid JSON"),
            "empty": (b"", 400, "empty request body"),
            "oversized": (json.dumps([{"text": "word " * 100}] * 10).encode(), 413, "over max_body_bytes=2000"),
        }
        for name, (body, status, message) in bad.items():
            response = client.post("/predict", content=body, headers={"content-type": "application/json"})
            assert response.status_code == status, (name, response.text)
            assert message in response.json()["error"], (name, response.json())
            assert "\n" not in response.json()["error"]
        after = client.post("/predict", json=records[2])  # still serving, still right
        assert after.status_code == 200 and same(after.json(), reference[2])
        metrics = client.get("/metrics").json()
        assert metrics["requests"] == 3 + len(bad) and metrics["errors"] == len(bad)
        assert metrics["records"] == len(records) + 2 and metrics["latency_ms"]["p50"] > 0


def export_to(ckpt: str, export_format: str, output: Path) -> Path:
    from nlp_template.inference.exporting import export, export_config

    return export(export_config(ckpt_path=ckpt, format=export_format, output=str(output), latency={"repeats": 0}))


@pytest.mark.parametrize(
    ("experiment", "export_format", "records"),
    [("sentiment_tiny", "onnx", [{"text": text} for text in TEXTS]),
     ("sentiment_tiny", "hf", [{"text": text} for text in TEXTS]),
     ("sentiment_lstm", "onnx", [{"text": text} for text in TEXTS]),
     ("ner_tiny", "onnx", [{"text": "John Smith lives in Paris ."}, {"text": "Acme Corp hired Mary in Berlin ."}]),
     ("ner_tiny", "torchscript", [{"text": "John Smith lives in Paris ."}, {"text": "Mary ."}])],
)  # fmt: skip
def test_an_export_serves_the_same_answers_as_nlp_predict(make_cfg, checkpoints, tmp_path, experiment,
                                                          export_format, records):  # fmt: skip
    ckpt = checkpoints[experiment]
    reference = expected(make_cfg, ckpt, tmp_path, records)
    directory = export_to(ckpt, export_format, tmp_path / "export")
    app = create_app(load_predictor(None, str(directory), threads=1), max_batch_size=8, batch_timeout=0.005)
    with TestClient(app) as client:
        info = client.get("/info").json()
        assert info["backend"] == export_format and info["model_path"] == str(directory)
        response = client.post("/predict", json=records)
        assert response.status_code == 200 and all(map(same, response.json(), reference)), response.json()
        bad = client.post("/predict", json={"review": "good"})
        assert bad.status_code == 422 and "has no column 'text'" in bad.json()["error"]


def test_exports_that_cannot_serve_are_refused_in_one_line(checkpoints, tmp_path):
    from nlp_template.utils.errors import UserInputError

    onnx_lm = export_to(checkpoints["lm_tiny"], "onnx", tmp_path / "lm")
    with pytest.raises(UserInputError, match="CausalLM predicts by generating token by token, which the onnx export"):
        load_predictor(None, str(onnx_lm))
    with pytest.raises(UserInputError, match="is not an nlp-export directory"):
        load_predictor(None, str(tmp_path))
    (onnx_lm / "task_config.pt").unlink()  # an export of an older version
    with pytest.raises(UserInputError, match="has no task_config.pt .* export the checkpoint again"):
        load_predictor(None, str(onnx_lm))
    adapters = tmp_path / "adapters"
    adapters.mkdir()
    (adapters / "export_report.json").write_text('{"format": "peft"}')
    with pytest.raises(UserInputError, match="LoRA adapters without their base model; serve a format=hf export"):
        load_predictor(None, str(adapters))


def test_the_batcher_groups_concurrent_requests_and_isolates_a_failing_one():
    calls: list[int] = []

    def predict(records):
        calls.append(len(records))
        if any(record["text"] == "boom" for record in records):
            raise ValueError("boom")
        return [{**record, "length": len(record["text"])} for record in records]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch_size=16, batch_timeout=0.05)
        await batcher.start()
        texts = [f"text {i}" for i in range(20)] + ["boom"]
        answers = await asyncio.gather(*(batcher.submit([{"text": t}]) for t in texts), return_exceptions=True)
        await batcher.stop()
        return texts, answers

    texts, answers = asyncio.run(scenario())
    assert isinstance(answers[-1], ValueError)  # only the bad request failed
    assert [answer[0]["length"] for answer in answers[:-1]] == [len(t) for t in texts[:-1]]
    assert max(calls) == 16 and calls[0] == 16  # 16 requests ran as one model batch


def test_requests_queued_while_the_model_runs_form_the_next_batch():
    """With batch_timeout=0 the first request runs alone; those that arrive meanwhile run together next."""
    calls: list[int] = []

    def predict(records):
        calls.append(len(records))
        time.sleep(0.05)  # the model is busy: the other requests queue up
        return records

    async def scenario():
        batcher = MicroBatcher(predict, max_batch_size=16, batch_timeout=0)
        await batcher.start()
        first = asyncio.create_task(batcher.submit([{"text": "0"}]))
        await asyncio.sleep(0.01)  # the first request is in the model now
        rest = asyncio.gather(*(batcher.submit([{"text": str(i)}]) for i in range(1, 17)))  # queue meanwhile
        answers = [await first, *await rest]
        await batcher.stop()
        return answers

    answers = asyncio.run(scenario())
    assert [answer[0]["text"] for answer in answers] == [str(i) for i in range(17)]
    assert calls == [1, 16], calls  # not 17 batches of one


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_server_process_answers_1000_concurrent_requests_and_stops_gracefully(make_cfg, checkpoints, tmp_path):
    ckpt = checkpoints["sentiment_tiny"]
    records = [{"text": text} for text in TEXTS]
    reference = expected(make_cfg, ckpt, tmp_path, records)
    port = free_port()
    # batch_timeout 0.05 s: with 32 clients waiting on their answers, requests meet in a batch even when the tiny
    # model answers faster than the clients send (at the default 0.01 s one CI run saw every batch hold one request).
    command = [sys.executable, "-m", "nlp_template.serve", f"ckpt_path={ckpt}", f"port={port}", "max_batch_size=16",
               "batch_timeout=0.05",
               f"paths.log_dir={tmp_path / 'logs'}"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # wait for the server, bounded
            assert server.poll() is None, server.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the server did not start within 90 s"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)

        def client(number: int) -> list[tuple[int, int, dict]]:
            answers, stop = [], time.monotonic() + 120
            with httpx.Client(base_url=url, timeout=30) as session:
                for i in range(number * 1000 // 32, (number + 1) * 1000 // 32):  # 1,000 requests over 32 clients
                    if time.monotonic() > stop:
                        break
                    if i == 500:  # a bad request in the middle of the load
                        response = session.post("/predict", json={"review": "no text column"})
                    else:
                        response = session.post("/predict", json=records[i % len(records)])
                    answers.append((i, response.status_code, response.json()))
            return answers

        with ThreadPoolExecutor(32) as pool:
            answers = [answer for chunk in pool.map(client, range(32)) for answer in chunk]
        assert len(answers) == 1000  # every request answered (none dropped, none timed out)
        for i, status, body in answers:
            if i == 500:
                assert status == 422 and "has no column 'text'" in body["error"]
            else:
                assert status == 200 and same(body, reference[i % len(records)]), (i, body)
        metrics = httpx.get(f"{url}/metrics").json()
        assert metrics["requests"] == 1000 and metrics["errors"] == 1
        assert metrics["mean_batch_size"] > 1  # concurrent requests were batched
        server.send_signal(signal.SIGTERM)
        # Graceful: uvicorn stops accepting, answers what is in flight, runs the shutdown (our log line), then
        # re-raises the signal, so the exit status is SIGTERM's.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        out, err = server.communicate()
        assert "nlp-serve stopped after 1000 requests (1 errors)" in out + err, (out + err)[-3000:]
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("override", "message"),
    [("port=70000", "port must be at most 65535"), ("max_batch_size=0", "max_batch_size must be a positive"),
     ("batch_timeout=-1", "batch_timeout must be a number of seconds >= 0"),
     ("max_body_bytes=big", "max_body_bytes must be a positive whole number")],
)  # fmt: skip
def test_the_serve_config_composes_and_bad_settings_are_one_line_errors(make_cfg, override, message):
    from nlp_template.serve import check_settings
    from nlp_template.utils.errors import UserInputError

    check_settings(make_cfg(["ckpt_path=model.ckpt"], name="serve"))  # the defaults are fine
    check_settings(make_cfg(["export_dir=exports/onnx"], name="serve"))
    with pytest.raises(UserInputError, match=message):
        check_settings(make_cfg(["ckpt_path=model.ckpt", override], name="serve"))
    for neither_or_both in ([], ["ckpt_path=model.ckpt", "export_dir=exports/onnx"]):
        with pytest.raises(UserInputError, match=r"give what to serve: ckpt_path=\.\.\. .* or export_dir=\.\.\."):
            check_settings(make_cfg(neither_or_both, name="serve"))
