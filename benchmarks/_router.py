"""Shared by the benchmarks of the serving path: their common options, and a wait until ``routerforge serve``
answers /readyz."""

from __future__ import annotations

import argparse
import os
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


def lone_request_parser(description: str) -> argparse.ArgumentParser:
    """The options of the lone-request benchmarks: router config, backend, requests per round, rounds, threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="benchmarks/load-router.yaml")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    return parser
