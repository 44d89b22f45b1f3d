"""Shared by the benchmarks that start ``routerforge serve`` themselves: wait until it answers /readyz."""

from __future__ import annotations

import time

import httpx


def wait_ready(client: httpx.Client, base: str, seconds: float = 60) -> None:
    """Poll ``base``/readyz until it answers 200; exit with a message if it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.get(base + "/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the router did not become ready")
