"""The HTTP app: `POST /predict` (the JSON of `nlp-predict`), `GET /health`, `GET /info`, `GET /metrics`.

A request body is one record (`{"text": "..."}`), a list of records, or JSON lines; it is read by the reader every
input file goes through (`data/reader.py`), so the checks and their one-line messages are the same. A body that
is not clean gets a 4xx JSON `{"error": "..."}` naming the problem; the server keeps serving. Requests are batched
together by `serving/batcher.py`.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from nlp_template.serving.batcher import MicroBatcher
from nlp_template.utils.errors import UserInputError

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """What the app serves (`serving/predictor.py`)."""

    def parse(self, body: bytes) -> list[dict[str, Any]]: ...  # noqa: D102
    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]: ...  # noqa: D102
    def info(self) -> dict[str, Any]: ...  # noqa: D102


class Counters:
    """Requests, errors and latencies (the last 10,000) since the server started."""

    def __init__(self) -> None:
        self.started = time.time()
        self.requests = self.errors = self.records = 0
        self.latencies: deque[float] = deque(maxlen=10_000)

    def summary(self, batcher: MicroBatcher) -> dict[str, Any]:
        """The counters, latency percentiles in ms and the mean model batch size."""
        latencies = sorted(self.latencies)

        def percentile(q: float) -> float | None:
            return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else None

        return {
            "uptime_seconds": round(time.time() - self.started, 1),
            "requests": self.requests,
            "errors": self.errors,
            "records": self.records,
            "model_batches": batcher.batches,
            "mean_batch_size": round(batcher.batched_records / batcher.batches, 2) if batcher.batches else None,
            "latency_ms": {
                "p50": percentile(0.5),
                "p95": percentile(0.95),
                "p99": percentile(0.99),
                "mean": round(1000 * statistics.fmean(latencies), 2) if latencies else None,
            },  # fmt: skip
        }


def create_app(
    predictor: Predictor, max_batch_size: int = 32, batch_timeout: float = 0.01, max_body_bytes: int = 1 << 20
) -> FastAPI:
    """The app serving `predictor` with dynamic batching; bodies over `max_body_bytes` are refused (413)."""
    batcher = MicroBatcher(predictor.predict, max_batch_size, batch_timeout)
    counters = Counters()
    info = {**predictor.info(), "max_batch_size": max_batch_size, "batch_timeout": batch_timeout,
            "max_body_bytes": max_body_bytes}  # fmt: skip

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()  # graceful: the queued requests are answered first
        log.info("nlp-serve stopped after %d requests (%d errors)", counters.requests, counters.errors)

    app = FastAPI(title="nlp-serve", lifespan=lifespan)

    def error(status: int, message: str) -> JSONResponse:
        counters.errors += 1
        return JSONResponse({"error": message}, status_code=status)

    @app.post("/predict")
    async def predict(request: Request) -> Any:
        start = time.perf_counter()
        counters.requests += 1
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            return error(413, f"request body of {declared} bytes is over max_body_bytes={max_body_bytes}; send fewer"
                              " records per request")  # fmt: skip
        body = await request.body()
        if len(body) > max_body_bytes:
            return error(413, f"request body of {len(body)} bytes is over max_body_bytes={max_body_bytes}")
        if not body.strip():
            return error(400, 'empty request body; send a JSON record such as {"text": "..."} or a list of them')
        try:
            records = predictor.parse(body)
        except UserInputError as problem:
            return error(422, str(problem))
        if not records:
            return error(400, "the request holds no records; send a JSON record or a non-empty list of them")
        try:
            results = await batcher.submit(records)
        except UserInputError as problem:
            return error(422, str(problem))
        except Exception as problem:  # noqa: BLE001 - one failed request must not stop the server
            return error(500, f"prediction failed: {type(problem).__name__}: {problem}")
        counters.records += len(records)
        counters.latencies.append(time.perf_counter() - start)
        single = body.lstrip().startswith(b"{") and len(results) == 1
        return results[0] if single else results

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def get_info() -> dict[str, Any]:
        return info

    @app.get("/metrics")
    async def metrics() -> dict[str, Any]:
        return counters.summary(batcher)

    return app
