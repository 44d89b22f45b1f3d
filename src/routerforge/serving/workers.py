"""``routerforge serve --workers N``: N processes accept on one listening socket.

One process runs the Python half of every request (HTTP, JSON, the guard, the policy, span decoding) on one
core while ONNX Runtime spreads the encoder over the others; N workers, each with its own bundle, batcher and
``cores / N`` ONNX Runtime threads, use every core for both halves.

The supervisor binds the socket, starts the workers (``spawn``: fresh interpreters, nothing forked from a
process that holds ONNX Runtime threads), forwards SIGHUP (reload) and SIGTERM/SIGINT (graceful stop) to them,
restarts a worker that dies, and stops everything if a worker fails while starting (a bad bundle or config
fails the command, as with one process). Prometheus series of all workers are summed through
prometheus_client's multiprocess mode (:func:`collect_metrics`); a worker's ``POST /admin/reload`` asks the
supervisor to reload every worker (:func:`request_reload`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from prometheus_client.multiprocess import mark_process_dead

from ..errors import RouterforgeError

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "ROUTERFORGE_SUPERVISOR_PID"  # set in the workers: where a reload request goes
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode reads it at import
STOP_GRACE_S = 30.0  # how long workers may take to finish their requests after SIGTERM
RESTARTS_PER_MINUTE = 5  # more deaths than this in a minute stop the server instead of restarting forever


def supervised() -> bool:
    """Whether this process is a worker under :func:`supervise`."""
    return SUPERVISOR_ENV in os.environ


def request_reload() -> None:
    """Ask the supervisor to reload every worker (it forwards SIGHUP to each)."""
    os.kill(int(os.environ[SUPERVISOR_ENV]), signal.SIGHUP)


def summed_registry():
    """A registry of every live worker's Prometheus series, summed (counters, histograms; gauges by their
    multiprocess mode), read from the multiprocess directory as it is now."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


def collect_metrics() -> bytes:
    """:func:`summed_registry` in Prometheus text format (a worker's ``/metrics``)."""
    from prometheus_client import generate_latest

    return generate_latest(summed_registry())


def worker_threads(workers: int, threads: int | None) -> int | None:
    """Checks ``--workers`` and returns each worker's ONNX Runtime threads: ``threads``, else (several workers)
    the cores shared out; one process keeps ``threads`` as given (None: ONNX Runtime's default, all cores)."""
    if workers < 1:
        raise RouterforgeError(f"--workers must be at least 1, not {workers}")
    return threads if workers == 1 else threads or max(1, (os.cpu_count() or 1) // workers)


def supervise(workers: int, sock: socket.socket, target: Callable[[socket.socket, Any], None]) -> None:
    """Run ``target(sock, ready)`` in ``workers`` processes until SIGTERM/SIGINT; ``ready.set()`` once loaded."""
    context = multiprocessing.get_context("spawn")
    metrics_dir = tempfile.mkdtemp(prefix="routerforge-metrics-")
    os.environ[METRICS_ENV], os.environ[SUPERVISOR_ENV] = metrics_dir, str(os.getpid())
    stopping, reload_requested = False, False

    def on_stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    def on_reload(signum, frame) -> None:
        nonlocal reload_requested
        reload_requested = True

    def start(index: int):
        ready = context.Event()
        process = context.Process(target=target, args=(sock, ready), name=f"routerforge-worker-{index}")
        process.start()
        return process, ready

    previous = {s: signal.signal(s, on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_reload)
    pool = [start(i) for i in range(workers)]
    deaths: list[float] = []
    started = False  # every worker was ready once: from then on a death is a crash to restart, not a bad start
    reload_pending: set[int] = set()  # workers to reload once they are ready (a starting one has no handler yet)
    try:
        log.info("supervisor %d: %d workers on %s", os.getpid(), workers, sock.getsockname())
        while not stopping:
            wait([process.sentinel for process, _ in pool], timeout=0.5)
            started = started or all(ready.is_set() for _, ready in pool)
            if reload_requested:
                reload_requested, reload_pending = False, set(range(workers))
            for index in sorted(reload_pending):
                process, ready = pool[index]
                if ready.is_set() and process.is_alive():
                    os.kill(process.pid, signal.SIGHUP)
                    reload_pending.discard(index)
            for index, (process, _) in enumerate(pool):
                if process.is_alive() or stopping:
                    continue
                if not started:
                    raise RouterforgeError(
                        f"worker {index} exited with code {process.exitcode} while starting",
                        hint="its error is in the log above; the same command with --workers 1 shows it alone",
                    )
                mark_process_dead(process.pid, metrics_dir)  # its live gauges leave the sums; its counters stay
                deaths = [t for t in deaths if t > time.monotonic() - 60] + [time.monotonic()]
                if len(deaths) > RESTARTS_PER_MINUTE:
                    raise RouterforgeError(f"workers died {len(deaths)} times in a minute: stopping")
                log.warning("worker %d (pid %d) exited with code %s: restarting", index, process.pid, process.exitcode)
                pool[index] = start(index)
    finally:
        _stop([process for process, _ in pool])
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(METRICS_ENV, None)
        os.environ.pop(SUPERVISOR_ENV, None)


def _stop(processes: list) -> None:
    """SIGTERM (uvicorn finishes in-flight requests), then SIGKILL whatever is left after the grace period."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.1))
        if process.is_alive():
            process.kill()
            process.join()
