"""Async micro-batching: concurrent requests share one encoder pass instead of queueing for one each.

>>> batcher = MicroBatcher(router.classify_batch, max_batch_size=16, max_wait_ms=2.0, queue_size=256)
>>> async with batcher:
...     signals = await batcher.submit(["what is 2 + 2?"])

Texts wait in a bounded queue; one worker takes up to ``max_batch_size`` of them, waiting at most
``max_wait_ms`` after the first for more to arrive, and runs ``fn`` on a single thread off the event loop
(ONNX Runtime already spreads one call over the cores; two calls at once would only fight for them).
``max_batch_size=1`` turns batching off (one text per call) for the on/off benchmark.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .signals import Signals


class QueueFull(Exception):
    """The queue has no room for the request's texts: the server answers 429 with Retry-After."""


class TooManyTexts(ValueError):
    """One request holds more texts than the whole queue: it could never be accepted (400, not 429)."""


@dataclass
class _Item:
    text: str
    future: asyncio.Future


class MicroBatcher:
    def __init__(
        self,
        fn: Callable[[list[str]], list[Signals]],
        max_batch_size: int = 16,
        max_wait_ms: float = 2.0,
        queue_size: int = 256,
    ):
        if max_batch_size < 1 or queue_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and queue_size must be >= 1, max_wait_ms >= 0")
        self.fn = fn
        # plain attributes, read on every batch: a config reload may change them while the batcher runs
        self.max_batch_size, self.max_wait_ms, self.queue_size = max_batch_size, max_wait_ms, queue_size
        self._pending: deque[_Item] = deque()
        self._arrived: asyncio.Event | None = None  # made in start(): an Event belongs to one event loop
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Texts waiting for a batch (not counting the batch being classified)."""
        return len(self._pending)

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        if self.running:
            return
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="routerforge-classify")
        self._worker = asyncio.create_task(self._work(), name="routerforge-batcher")

    async def stop(self) -> None:
        """Stop the worker; texts still waiting fail with RuntimeError (uvicorn drains requests before this)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the batcher stopped"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def __aenter__(self) -> MicroBatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def submit(self, texts: list[str]) -> list[Signals]:
        """Signals for ``texts``, in order; raises QueueFull when the queue cannot take them all right now."""
        if not self.running:
            raise RuntimeError("the batcher is not running (call start() first)")
        if len(texts) > self.queue_size:
            raise TooManyTexts(f"a request may hold at most {self.queue_size} texts, this one has {len(texts)}")
        if len(self._pending) + len(texts) > self.queue_size:
            raise QueueFull(f"{len(self._pending)} texts already waiting (queue_size {self.queue_size})")
        loop = asyncio.get_running_loop()
        items = [_Item(text, loop.create_future()) for text in texts]
        self._pending.extend(items)
        self._arrived.set()
        results = await asyncio.gather(*(item.future for item in items), return_exceptions=True)
        for result in results:  # one exception per failed batch; a request may span two batches
            if isinstance(result, BaseException):
                raise result
        return results

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = loop.time() + self.max_wait_ms / 1000
            while len(self._pending) < self.max_batch_size and loop.time() < deadline:
                self._arrived.clear()
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._arrived.wait()
                except TimeoutError:
                    break
            batch = []
            while self._pending and len(batch) < self.max_batch_size:
                item = self._pending.popleft()
                if not item.future.done():  # its request was cancelled (client gone): skip the text
                    batch.append(item)
            if batch:
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        try:
            results = await loop.run_in_executor(self._executor, self.fn, [item.text for item in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"classifier returned {len(results)} results for {len(batch)} texts")
        except asyncio.CancelledError:
            _fail(batch, RuntimeError("the batcher stopped"))
            raise
        except Exception as err:  # every waiter of this batch sees it; the worker carries on
            _fail(batch, err)
            return
        for item, result in zip(batch, results):
            if not item.future.done():
                item.future.set_result(result)


def _fail(batch: list[_Item], err: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(err)
