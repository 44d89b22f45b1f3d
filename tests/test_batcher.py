"""MicroBatcher: concurrent submissions share one call, max_wait bounds the wait, a full queue refuses, and an
exception reaches every waiter of its batch without stopping the worker."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from routerforge.runtime.batcher import MicroBatcher, QueueFull, TooManyTexts, TooMuchWork, work_of
from routerforge.runtime.signals import LabelSignal, Signals


class Recorder:
    """``fn`` for the batcher: records each call's texts and thread; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()
        self.delay, self.fail_on = delay, fail_on

    def __call__(self, texts: list[str]) -> list[Signals]:
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_on in texts:
            raise RuntimeError("boom")
        return [Signals(category=LabelSignal(text, 1.0, {text: 1.0})) for text in texts]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def until(condition) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def test_concurrent_submissions_share_one_call():
    fn = Recorder()

    async def main():
        async with MicroBatcher(fn, max_batch_size=16, max_wait_ms=50, queue_size=64) as batcher:
            return await asyncio.gather(*(batcher.submit([f"t{i}", f"u{i}"]) for i in range(5)))

    results = run(main())
    assert len(fn.calls) == 1 and len(fn.calls[0]) == 10
    assert [[s.category.label for s in r] for r in results] == [[f"t{i}", f"u{i}"] for i in range(5)]
    assert fn.threads and threading.main_thread().name not in fn.threads  # off the event loop's thread


def test_batches_are_capped_at_max_batch_size():
    fn = Recorder()

    async def main():
        async with MicroBatcher(fn, max_batch_size=4, max_wait_ms=20, queue_size=64) as batcher:
            return await asyncio.gather(*(batcher.submit([str(i)]) for i in range(10)))

    results = run(main())
    assert [len(c) for c in fn.calls] == [4, 4, 2]
    assert [r[0].category.label for r in results] == [str(i) for i in range(10)]


def test_batch_size_one_means_no_batching():
    fn = Recorder()

    async def main():
        async with MicroBatcher(fn, max_batch_size=1, max_wait_ms=500, queue_size=64) as batcher:
            started = time.perf_counter()
            await asyncio.gather(*(batcher.submit([str(i)]) for i in range(6)))
            return time.perf_counter() - started

    elapsed = run(main())
    assert [len(c) for c in fn.calls] == [1] * 6
    assert elapsed < 1.5  # a full batch never waits for max_wait (six waits: 3 s)


def test_max_wait_is_respected():
    fn = Recorder()

    async def main():
        async with MicroBatcher(fn, max_batch_size=16, max_wait_ms=100, queue_size=64) as batcher:
            started = time.perf_counter()
            await batcher.submit(["alone"])
            return time.perf_counter() - started

    elapsed = run(main())
    assert 0.09 <= elapsed < 1.0  # waited for company about max_wait, then ran alone
    assert fn.calls == [["alone"]]


def test_late_arrivals_within_max_wait_join_the_batch():
    fn = Recorder()

    async def main():
        async with MicroBatcher(fn, max_batch_size=16, max_wait_ms=300, queue_size=64) as batcher:
            first = asyncio.create_task(batcher.submit(["first"]))
            await asyncio.sleep(0.05)
            await asyncio.gather(first, batcher.submit(["second"]))

    run(main())
    assert fn.calls == [["first", "second"]]


def test_queue_full_and_too_many_texts():
    fn = Recorder(delay=0.3)

    async def main():
        async with MicroBatcher(fn, max_batch_size=2, max_wait_ms=0, queue_size=3) as batcher:
            with pytest.raises(TooManyTexts):
                await batcher.submit(["a"] * 4)
            busy = asyncio.create_task(batcher.submit(["a", "b"]))
            await until(lambda: fn.calls)  # taken by the worker: the queue is free
            waiting = asyncio.create_task(batcher.submit(["c", "d", "e"]))
            await asyncio.sleep(0)
            assert batcher.depth == 3
            with pytest.raises(QueueFull):
                await batcher.submit(["f"])
            await asyncio.gather(busy, waiting)
            assert batcher.depth == 0
            return await batcher.submit(["g"])  # room again

    assert run(main())[0].category.label == "g"


def test_exception_reaches_every_waiter_and_the_batcher_recovers():
    fn = Recorder(fail_on="bad")

    async def main():
        async with MicroBatcher(fn, max_batch_size=16, max_wait_ms=50, queue_size=64) as batcher:
            outcomes = await asyncio.gather(batcher.submit(["ok"]), batcher.submit(["bad"]), return_exceptions=True)
            after = await batcher.submit(["fine"])
            return outcomes, after

    outcomes, after = run(main())
    assert len(fn.calls) == 2 and fn.calls[0] == ["ok", "bad"]
    assert all(isinstance(o, RuntimeError) and str(o) == "boom" for o in outcomes)
    assert after[0].category.label == "fine"


def test_cancelled_request_is_skipped():
    fn = Recorder(delay=0.2)

    async def main():
        async with MicroBatcher(fn, max_batch_size=1, max_wait_ms=0, queue_size=8) as batcher:
            first = asyncio.create_task(batcher.submit(["first"]))
            await until(lambda: fn.calls)  # "first" is being classified
            gone = asyncio.create_task(batcher.submit(["gone"]))
            await asyncio.sleep(0)
            gone.cancel()
            await asyncio.gather(first, batcher.submit(["last"]))

    run(main())
    assert fn.calls == [["first"], ["last"]]


def test_submit_needs_a_started_batcher_and_stop_fails_waiters():
    fn = Recorder(delay=0.2)

    async def main():
        batcher = MicroBatcher(fn, max_batch_size=1, max_wait_ms=0, queue_size=8)
        with pytest.raises(RuntimeError, match="not running"):
            await batcher.submit(["x"])
        await batcher.start()
        pending = asyncio.create_task(batcher.submit(["a", "b"]))
        await until(lambda: fn.calls)
        await batcher.stop()
        with pytest.raises(RuntimeError, match="stopped"):
            await pending
        assert not batcher.running

    run(main())


def test_round_robin_serves_a_small_request_before_a_large_one_finishes():
    fn = Recorder(delay=0.02)

    async def main():
        async with MicroBatcher(fn, max_batch_size=2, max_wait_ms=0, queue_size=64) as batcher:
            large = asyncio.create_task(batcher.submit([f"big{i}" for i in range(10)]))
            await until(lambda: fn.calls)
            small = asyncio.create_task(batcher.submit(["small"]))
            await small
            done_before = large.done()
            await large
            return done_before

    assert run(main()) is False  # the small one did not wait for all ten
    assert fn.calls[1] == ["small"]  # the next call after it arrived: batched apart from the large request's texts


def test_a_batch_stops_at_its_work_cap():
    fn = Recorder()

    async def main():
        async with MicroBatcher(fn, max_batch_size=16, max_wait_ms=20, queue_size=64, max_batch_work=300) as batcher:
            await asyncio.gather(batcher.submit(["x" * 200]), batcher.submit(["y" * 200]), batcher.submit(["z"]))

    run(main())
    assert all(sum(work_of(t) for t in call) <= 300 or len(call) == 1 for call in fn.calls) and len(fn.calls) >= 2


def test_admission_by_work_refuses_what_cannot_finish_in_time():
    def fn(texts):  # 10 ms a call plus 10 us a character, like an encoder
        time.sleep(0.01 + 1e-5 * sum(len(t) for t in texts))
        return [Signals(category=LabelSignal(t[:5], 1.0, {})) for t in texts]

    async def main():
        async with MicroBatcher(fn, max_batch_size=4, max_wait_ms=0, queue_size=64, max_batch_work=8000) as batcher:
            assert batcher.estimate_s(["a"]) == (0.0, 0.0)  # nothing measured yet: admitted
            await batcher.submit(["a" * 100])
            fixed, per_work = batcher.cost_model()
            assert fixed == 0 and per_work >= 0.01 / work_of("a" * 100)  # calls alike: their cost per unit
            await batcher.submit(["a" * 7000])  # calls that differ: a fixed part and a slope are fitted
            fixed, per_work = batcher.cost_model()
            assert fixed > 0.005 and per_work > 0  # 10 ms a call, 10 us a character
            alone, _ = batcher.estimate_s(["a" * 7000] * 40)
            with pytest.raises(TooMuchWork):  # could not finish even alone: 413, not worth a retry
                await batcher.submit(["a" * 7000] * 40, deadline_s=alone / 2)
            ahead = [asyncio.create_task(batcher.submit(["b" * 7000] * 3, deadline_s=60)) for _ in range(6)]
            await asyncio.sleep(0)
            alone, queued = batcher.estimate_s(["c" * 7000] * 3)
            assert queued > alone
            with pytest.raises(QueueFull):  # fine alone, late behind the others: 429
                await batcher.submit(["c" * 7000] * 3, deadline_s=(alone + queued) / 2)
            small_alone, small_queued = batcher.estimate_s(["small"])
            assert small_queued < queued  # round robin: only one text of each queue is ahead of it
            small = await batcher.submit(["small"], deadline_s=60)
            await asyncio.gather(*ahead)
            return small

    assert run(main())[0].category.label == "small"


def test_the_cost_model_fits_calls_that_cost_per_text():
    """The int8 backend runs a batch's texts one by one: 16 short texts cost 16 short calls. The queue of 128
    short prompts that overload brings must be estimated at ~128 calls, not at 8 calls of 16 (which admitted
    requests that then waited 250-500 ms against a 100 ms limit)."""
    batcher = MicroBatcher(lambda texts: [], max_batch_size=16, queue_size=1024, max_batch_work=16_000)
    one = work_of("x" * 150)
    batcher._calls.extend([(one, 0.003), (16 * one, 0.048), (4 * one, 0.012), (one, 0.0031)])
    assert 0.9 * 128 * 0.003 < batcher.estimate_alone_s(128 * one, 128) < 1.1 * 128 * 0.003
    per_work = batcher.cost_model()[1]
    batcher._calls.append((16 * one, 0.02))  # a new call: the model is fitted again
    assert batcher.cost_model()[1] < per_work


def test_admission_by_queue_wait_refuses_at_once_past_capacity():
    """max_queue_s: a request that would wait longer than the limit behind queued work is refused up front
    (429), while one with room, or with nothing queued, is admitted."""

    def fn(texts):  # 20 ms a call
        time.sleep(0.02)
        return [Signals(category=LabelSignal(t, 1.0, {})) for t in texts]

    async def main():
        async with MicroBatcher(fn, max_batch_size=1, max_wait_ms=0, queue_size=64) as batcher:
            assert not batcher.too_busy(0.001)
            await batcher.submit(["warm"], max_queue_s=0.001)  # nothing queued: admitted even at a 1 ms limit
            await batcher.submit(["warm"])
            ahead = [asyncio.create_task(batcher.submit([f"a{i}"])) for i in range(8)]
            await asyncio.sleep(0)
            _, queued = batcher.estimate_s(["x"])
            assert queued > 0.1  # eight 20 ms calls ahead
            started = time.perf_counter()
            assert batcher.too_busy(0.05) and not batcher.too_busy(10.0)  # the check before a body is read
            with pytest.raises(QueueFull, match="ms until checked"):
                await batcher.submit(["late"], max_queue_s=0.05)
            refused_in = time.perf_counter() - started
            admitted = await batcher.submit(["patient"], max_queue_s=10.0)
            await asyncio.gather(*ahead)
            return refused_in, admitted

    refused_in, admitted = run(main())
    assert refused_in < 0.01 and admitted[0].category.label == "patient"
