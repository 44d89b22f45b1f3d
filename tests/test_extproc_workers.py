"""`routerforge extproc --workers N`: gRPC servers in N processes on one port, summed metrics, restart and stop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from test_extproc import CHAT, _body, _exchange, _headers, run
from test_workers import _config, _free_port, _stops_cleanly, _wait_until, _workers

pytestmark = pytest.mark.slow  # each worker is a fresh interpreter that imports torch for the tiny bundle


def _routed(port: int) -> bool:
    """One chat request as Envoy sends it, on a new channel (the kernel hands each connection to a worker)."""
    try:
        answers = run(_exchange(port, _headers(), _body(CHAT)))
    except Exception:  # noqa: BLE001 - not listening yet
        return False
    return answers[1].HasField("request_body")


def _decisions(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("routerforge_decisions_total{")
    )


@pytest.mark.timeout(300)
def test_two_extproc_workers_share_one_port_sum_metrics_restart_and_stop(tiny_bundle, tmp_path):
    port, metrics_port, log = _free_port(), _free_port(), tmp_path / "extproc.log"
    command = [str(Path(sys.executable).with_name("routerforge")), "extproc", str(tiny_bundle)]
    command += ["--config", str(_config(tmp_path)), "--port", str(port), "--backend", "torch", "--threads", "1"]
    command += ["--workers", "2", "--metrics-port", str(metrics_port)]
    server = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        _wait_until(lambda: len(_workers(server.pid)) == 2 and log.read_text().count("ExtProc server on") == 2, log)
        assert all(_routed(port) for _ in range(8))
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert _decisions(metrics) == 8, metrics  # every worker's count, summed by the supervisor

        dead = min(_workers(server.pid))
        subprocess.run(["kill", "-9", str(dead)], check=True)  # a crashed worker is replaced
        _wait_until(lambda: len(_workers(server.pid)) == 2 and dead not in _workers(server.pid), log)
        _wait_until(lambda: log.read_text().count("ExtProc server on") == 3, log)
        assert all(_routed(port) for _ in range(4))

        _stops_cleanly(server)
    finally:
        server.kill()
        server.wait()
