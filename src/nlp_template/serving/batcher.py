"""Dynamic batching for the server: requests that arrive together run as one model batch.

Why our own and not litserve's: litserve (0.2.x) runs the model in a spawned process behind a manager queue, and one
bad request in a batch fails every request of that batch (LitServe#340). Here one asyncio task collects queued
requests until `max_batch_size` records are waiting or `batch_timeout` seconds have passed since the first, runs the
model once in a worker thread (the event loop keeps accepting requests meanwhile), and answers each request with its
own results; if the batch fails, each request is retried alone so only the one that fails gets the error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PredictFn = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass
class _Pending:
    records: list[dict[str, Any]]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Queue requests (lists of records) and run them through `predict` in batches of up to `max_batch_size` records.

    Args:
        predict: records -> one result per record, in order (blocking; runs in a worker thread).
        max_batch_size: most records per model call (a larger request runs alone, in chunks of this size).
        batch_timeout: seconds to wait for more requests after the first one of a batch arrived.
    """

    def __init__(self, predict: PredictFn, max_batch_size: int = 32, batch_timeout: float = 0.01) -> None:
        if max_batch_size < 1 or batch_timeout < 0:
            raise ValueError(f"need max_batch_size >= 1 and batch_timeout >= 0, got {max_batch_size}, {batch_timeout}")
        self.predict, self.max_batch_size, self.batch_timeout = predict, max_batch_size, batch_timeout
        self.batches = 0  # model calls so far
        self.batched_records = 0  # records they held
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the batching task (in the running event loop)."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Finish the queued requests, then stop."""
        if self._worker is None or self._queue is None:
            return
        await self._queue.join()
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        self._worker = None

    async def submit(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The results for `records`, computed in some batch; raises what `predict` raised for them."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(records, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            size = len(batch[0].records)
            deadline = batch[0].queued + self.batch_timeout
            while size < self.max_batch_size:
                # The last request may take the batch past max_batch_size: it then runs in chunks of that size.
                if not self._queue.empty():
                    # Queued while the model ran: take them now, however long they waited. (`wait_for` with a
                    # deadline already past gives up before even looking at the queue: every batch held one request.)
                    pending = self._queue.get_nowait()
                else:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    try:
                        pending = await asyncio.wait_for(self._queue.get(), timeout=remaining)
                    except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
                        break
                batch.append(pending)
                size += len(pending.records)
            try:
                await self._answer(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _answer(self, batch: list[_Pending]) -> None:
        records = [record for pending in batch for record in pending.records]
        try:
            results = await asyncio.to_thread(self._predict_in_chunks, records)
        except Exception as error:  # noqa: BLE001 - it belongs to one request: find it, answer the others
            if len(batch) > 1:
                for pending in batch:
                    await self._answer([pending])
            elif not batch[0].future.done():
                batch[0].future.set_exception(error)
            return
        start = 0
        for pending in batch:
            if not pending.future.done():  # a client that went away leaves a cancelled future
                pending.future.set_result(results[start : start + len(pending.records)])
            start += len(pending.records)

    def _predict_in_chunks(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for start in range(0, len(records), self.max_batch_size):
            chunk = records[start : start + self.max_batch_size]
            results += self.predict(chunk)
            self.batches += 1
            self.batched_records += len(chunk)
        return results
