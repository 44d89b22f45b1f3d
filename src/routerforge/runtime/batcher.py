"""Async micro-batching: concurrent requests share one encoder pass instead of queueing for one each.

>>> batcher = MicroBatcher(router.classify_batch, max_batch_size=16, queue_size=256)
>>> async with batcher:
...     signals = await batcher.submit(["what is 2 + 2?"])

Texts wait in a bounded queue; one worker takes up to ``max_batch_size`` of them and runs ``fn`` on a single
thread off the event loop (ONNX Runtime already spreads one call over the cores; two calls at once would only
fight for them). Batching is adaptive: an idle worker runs at once, and what arrives during a call forms the next
batch; ``max_wait_ms`` > 0 also waits that long after the first text for more.
``max_batch_size=1`` turns batching off (one text per call) for the on/off benchmark.

Admission and fairness (a hostile client must not starve the others): each submission has its own queue; a
batch takes one text from each queue in turn, so a request of 250 long texts does not delay a one-text request
by 250 texts; small requests (at most ``SMALL_TEXTS`` texts and ``SMALL_WORK`` work) are batched apart from
large ones, first come first served (so none waits behind later arrivals), and wait for at most the call that is
running; large requests take turns with the least work left first; a batch stops at ``max_batch_work``
(characters, plus a per-text cost) so long texts share a call with fewer others. Requests of more than
``SMALL_TEXTS`` texts may fill only three quarters of the queue: the rest stays for small ones. The worker
measures what a call costs by a least-squares fit of recent calls' seconds against their work (the fixed part per
call is the intercept, between 0 and the quickest call); while recent calls are alike (work within 2x: an idle
server's lone prompts, a saturated one's full batches) or the slope is not positive, work costs what those calls
cost per unit.
A fit, because the cost's shape depends on the backend: the int8 one runs a batch's texts one by one, so 16 short
prompts cost 16 short calls, not one.
``submit(..., deadline_s=)`` refuses up front a request that could not finish in time: :class:`TooMuchWork`
when the request alone could not (413), :class:`QueueFull` when the work ahead of it is the reason (429).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .signals import Signals


class QueueFull(Exception):
    """The queue has no room for the request's texts: the server answers 429 with Retry-After."""


class TooManyTexts(ValueError):
    """One request holds more texts than the whole queue: it could never be accepted (413, not 429)."""


class TooMuchWork(ValueError):
    """One request holds more text than can be classified before its deadline, even on an idle server (413)."""


WORK_PER_TEXT = 64  # work units (characters) a text costs beyond its length: tokenising, padding, one window
_RECENT = 64  # calls the cost model remembers
SMALL_TEXTS = 8  # requests of at most this many texts may use the last quarter of the queue
SMALL_WORK = 8192  # ... and of at most this much work are "small": batched apart from large ones
_TYPICAL_TEXT = "x" * 150  # what a request that has not been read yet is assumed to hold (a ~30-token prompt)


class _Queue(deque):
    """One submission's texts waiting, and the work they hold."""

    work: int = 0
    small: bool = False


def _is_small(texts: int, work: int) -> bool:
    return texts <= SMALL_TEXTS and work <= SMALL_WORK


def work_of(text: str) -> int:
    """The work a text costs, in characters-equivalent units (cheap to compute before queueing)."""
    return len(text) + WORK_PER_TEXT


@dataclass
class _Item:
    text: str
    future: asyncio.Future
    work: int = 0


class MicroBatcher:
    """Concurrent submissions share encoder calls; one worker thread runs them in turn."""

    def __init__(
        self,
        fn: Callable[[list[str]], list[Signals]],
        max_batch_size: int = 16,
        max_wait_ms: float = 0.0,
        queue_size: int = 256,
        max_batch_work: int | None = None,
    ):
        if max_batch_size < 1 or queue_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and queue_size must be >= 1, max_wait_ms >= 0")
        self.fn = fn
        # plain attributes, read on every batch: a config reload may change them while the batcher runs
        self.max_batch_size, self.max_wait_ms, self.queue_size = max_batch_size, max_wait_ms, queue_size
        self.max_batch_work = max_batch_work  # None: no cap beyond max_batch_size
        self._calls: deque[tuple[int, float]] = deque(maxlen=_RECENT)  # (work, seconds) of recent calls
        self._model: tuple[tuple, tuple[float, float]] | None = None  # (the calls it was fitted to, the fit)
        self._queues: list[_Queue] = []  # one per submission
        self._depth = 0
        self._running: tuple[int, int] = (0, 0)  # (work, texts) of the call being run
        self._arrived: asyncio.Event | None = None  # made in start(): an Event belongs to one event loop
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        """Texts waiting for a batch (not counting the batch being classified)."""
        return self._depth

    def cost_model(self) -> tuple[float, float] | None:
        """``(seconds per call, seconds per unit of work)`` fitted to recent calls (module docstring); None before
        any call ran. Refitted only when a call was added: admission reads it for every request."""
        if not self._calls:
            return None
        key = (len(self._calls), self._calls[-1])
        if self._model is None or self._model[0] != key:
            self._model = (key, self._fit())
        return self._model[1]

    def _fit(self) -> tuple[float, float]:
        works, seconds = zip(*self._calls)
        if max(works) >= 2 * min(works):
            slope, intercept = statistics.linear_regression(works, seconds)
            if slope > 0:
                return min(max(intercept, 0.0), min(seconds)), slope
        return 0.0, sum(seconds) / sum(works)  # calls alike (idle, or saturated): what they cost per unit

    def _calls_for(self, work: int, texts: int) -> int:
        calls = math.ceil(texts / self.max_batch_size)
        return max(calls, math.ceil(work / self.max_batch_work)) if self.max_batch_work else calls

    def estimate_alone_s(self, work: int, texts: int = 1) -> float:
        """Seconds ``texts`` texts holding ``work`` units would take on an idle batcher (0 before any call ran)."""
        model = self.cost_model()
        return 0.0 if model is None else self._calls_for(work, texts) * model[0] + work * model[1]

    def estimate_s(self, texts: list[str]) -> tuple[float, float]:
        """Seconds to classify ``texts`` alone, and with the work that round robin serves before their last text:
        the running call, whole (its own call: the texts behind it go in the next), then each other queue's first
        ``len(texts)`` texts; ``(0, 0)`` before any call ran."""
        model = self.cost_model()
        if model is None:
            return 0.0, 0.0
        fixed, per_work = model
        own, k = sum(work_of(t) for t in texts), len(texts)
        small = _is_small(k, own)
        ahead = ahead_texts = 0
        for queue in self._queues:  # (an upper bound: queues with more work left come after ours)
            if small and not queue.small:
                continue  # large requests are batched apart: only the running call is ahead of a small one
            for n, item in enumerate(queue):
                if n >= k:
                    break
                ahead, ahead_texts = ahead + item.work, ahead_texts + 1
        alone = self._calls_for(own, k) * fixed + own * per_work
        running_work, running_texts = self._running
        running = (
            self._calls_for(running_work, running_texts) * fixed + running_work * per_work if running_texts else 0.0
        )
        queued = running + self._calls_for(own + ahead, k + ahead_texts) * fixed + (own + ahead) * per_work
        return alone, queued

    def too_busy(self, max_queue_s: float) -> bool:
        """Whether a one-text request arriving now would wait longer than ``max_queue_s`` to be checked: the
        cheap test a server runs before reading a body, so that past saturation a refusal costs next to nothing."""
        return bool(self._depth) and self.estimate_s([_TYPICAL_TEXT])[1] > max_queue_s

    @property
    def running(self) -> bool:
        """Whether the worker is running."""
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        """Start the worker (``async with`` does it)."""
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
        while self._queues:
            for item in self._queues.pop():
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the batcher stopped"))
        self._depth = 0
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def __aenter__(self) -> MicroBatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def submit(
        self, texts: list[str], deadline_s: float | None = None, max_queue_s: float | None = None
    ) -> list[Signals]:
        """Signals for ``texts``, in order; raises QueueFull when the queue cannot take them all right now, or
        (with ``deadline_s``) when the work ahead would make them late, or (with ``max_queue_s``) when they
        would wait longer than that behind others' work (admission control: past capacity the excess is refused
        at once, so what is admitted keeps its latency); TooMuchWork when they alone would be late."""
        if not self.running:
            raise RuntimeError("the batcher is not running (call start() first)")
        if len(texts) > self.queue_size:
            raise TooManyTexts(
                f"a request may hold at most {self.queue_size} texts to check (server.queue_size), "
                f"this one has {len(texts)}"
            )
        room = self.queue_size if len(texts) <= SMALL_TEXTS else self.queue_size * 3 // 4
        if self._depth + len(texts) > room:
            raise QueueFull(f"{self._depth} texts already waiting (queue_size {self.queue_size})")
        limited = texts and (deadline_s is not None or (max_queue_s is not None and self._depth))
        alone, queued = self.estimate_s(texts) if limited else (0.0, 0.0)  # one estimate for both limits
        if deadline_s is not None and texts:
            if alone > deadline_s:
                raise TooMuchWork(
                    f"this request holds more text than can be checked within {deadline_s:g} s "
                    f"(about {alone:.1f} s on an idle server); send less text per request"
                )
            if queued > deadline_s:
                raise QueueFull(f"about {queued:.1f} s of work ahead (deadline {deadline_s:g} s)")
        if max_queue_s is not None and texts and self._depth:
            if queued > max_queue_s:
                raise QueueFull(f"about {1000 * queued:.0f} ms until checked (limit {1000 * max_queue_s:g} ms)")
        loop = asyncio.get_running_loop()
        items = [_Item(text, loop.create_future(), work_of(text)) for text in texts]
        if items:
            queue = _Queue(items)
            queue.work = sum(item.work for item in items)
            queue.small = _is_small(len(items), queue.work)
            self._queues.append(queue)
            self._depth += len(items)
        self._event().set()
        results = await asyncio.gather(*(item.future for item in items), return_exceptions=True)
        signals: list[Signals] = []
        for result in results:  # one exception per failed batch; a request may span two batches
            if isinstance(result, BaseException):
                raise result
            signals.append(result)
        return signals

    def _event(self) -> asyncio.Event:
        if self._arrived is None:
            raise RuntimeError("the micro-batcher is not running: start it (async with batcher) first")
        return self._arrived

    async def _work(self) -> None:
        loop, arrived = asyncio.get_running_loop(), self._event()
        while True:
            while not self._depth:
                arrived.clear()
                await arrived.wait()
            deadline = loop.time() + self.max_wait_ms / 1000
            while self._depth < self.max_batch_size and loop.time() < deadline:
                arrived.clear()
                try:
                    async with asyncio.timeout_at(deadline):
                        await arrived.wait()
                except TimeoutError:
                    break
            batch = self._take()
            if batch:
                await self._run(loop, batch)

    def _take(self) -> list[_Item]:
        """The next batch: one text from each queue in turn (small requests first come, first served), up to
        ``max_batch_size`` texts and ``max_batch_work``. Queues of requests that went away (timed out, client gone)
        are dropped."""
        for queue in [q for q in self._queues if q[0].future.done() and q[-1].future.done()]:
            self._queues.remove(queue)  # a cancelled request cancels all its texts at once
            self._depth -= len(queue)
        # small requests go together (never padded with large ones' texts) and first come, first served: ordering
        # them by work would starve a slightly longer prompt for as long as shorter ones keep arriving; large
        # requests take turns, least work left first
        order = [q for q in self._queues if q.small] or sorted(self._queues, key=lambda q: q.work)
        batch: list[_Item] = []
        work, cap = 0, self.max_batch_work
        while order and len(batch) < self.max_batch_size:
            for queue in list(order):
                if len(batch) >= self.max_batch_size or (batch and cap is not None and work + queue[0].work > cap):
                    order = []
                    break
                item = queue.popleft()
                queue.work -= item.work
                self._depth -= 1
                if not queue:
                    order.remove(queue)
                    self._queues.remove(queue)
                if not item.future.done():  # its request was cancelled: skip the text
                    batch.append(item)
                    work += item.work
        return batch

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        work = sum(item.work for item in batch)
        self._running = (work, len(batch))
        started = time.perf_counter()
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
        finally:
            self._running = (0, 0)
        self._calls.append((work, time.perf_counter() - started))
        for item, result in zip(batch, results):
            if not item.future.done():
                item.future.set_result(result)


def _fail(batch: list[_Item], err: BaseException) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(err)
