"""`routerforge serve --workers N`: processes sharing one port, summed metrics, reload, restart and stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = pytest.mark.slow  # each worker is a fresh interpreter that imports torch for the tiny bundle


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(tmp_path: Path) -> Path:
    config = {"backends": [{"name": "b", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}], "default_model": "m"}
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _workers(pid: int) -> set[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def _stops_cleanly(server: subprocess.Popen) -> None:
    """SIGTERM to the supervisor: it exits 0 and takes every worker with it."""
    workers = _workers(server.pid)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _serve(bundle, config: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("routerforge")), "serve", str(bundle), "--config", str(config)]
    command += ["--port", str(port), "--backend", "torch", "--threads", "1", *extra]
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait_until(check, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out; the server's log:\n{log.read_text()}")


def _classified(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("routerforge_requests_total{") and 'endpoint="/v1/classify"' in line and '"200"' in line
    )


@pytest.mark.timeout(300)
def test_two_workers_serve_one_port_sum_metrics_restart_reload_and_stop(tiny_bundle, tmp_path):
    port, log = _free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    server = _serve(tiny_bundle, _config(tmp_path), port, log, "--workers", "2")
    try:
        _wait_until(lambda: len(_workers(server.pid)) == 2 and httpx.get(f"{url}/readyz").status_code == 200, log)
        first = _workers(server.pid)
        for _ in range(12):  # a new connection each: the kernel hands them to either worker
            assert httpx.post(f"{url}/v1/classify", json={"text": "integrate x squared"}).status_code == 200
        assert _classified(httpx.get(f"{url}/metrics").text) == 12  # every worker's count, summed

        dead = min(first)
        subprocess.run(["kill", "-9", str(dead)], check=True)  # a crashed worker is replaced
        _wait_until(lambda: len(_workers(server.pid)) == 2 and dead not in _workers(server.pid), log)
        _wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, log)
        assert httpx.post(f"{url}/v1/classify", json={"text": "hello"}).status_code == 200

        reload = httpx.post(f"{url}/admin/reload")
        assert reload.status_code == 202 and reload.json()["status"] == "reloading"
        _wait_until(lambda: log.read_text().count("reloaded") >= 2, log, timeout=60)  # each worker logs its reload
        assert httpx.post(f"{url}/v1/classify", json={"text": "hello"}).status_code == 200

        _stops_cleanly(server)
    finally:
        server.kill()
        server.wait()


@pytest.mark.timeout(180)
def test_a_worker_that_cannot_start_fails_the_command(tmp_path):
    log = tmp_path / "serve.log"
    server = _serve(tmp_path / "no-bundle", _config(tmp_path), _free_port(), log, "--workers", "2")
    try:
        assert server.wait(timeout=150) != 0
    finally:
        server.kill()
    assert "while starting" in log.read_text()
