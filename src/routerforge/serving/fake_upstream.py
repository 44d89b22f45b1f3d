"""A fake OpenAI-compatible upstream and a loopback server thread: for the proxy's tests, the self-contained
load benchmark, and trying a router config without an LLM.

>>> upstream = FakeUpstream()
>>> with background_server(upstream.app) as url:          # "http://127.0.0.1:PORT"
...     ...                                               # point a backend's base_url at url + "/v1"
>>> upstream.received[-1]["body"]["model"]

It answers ``POST /v1/chat/completions`` with a completion naming the model it was asked for (SSE chunks when
``stream`` is true), and records every request; ``status``, ``delay_s`` and ``chunk_delay_s`` make it fail,
slow, or stream slowly.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


class FakeUpstream:
    """An OpenAI-compatible stand-in backend that records what it received."""

    def __init__(self, chunks: int = 5, record: bool = True):
        self.received: list[dict] = []  # {"headers": {...}, "body": {...}} per request, in arrival order
        self.record = record  # off for load runs: the list would grow for the whole run
        self.status, self.delay_s, self.chunk_delay_s, self.chunks = 200, 0.0, 0.0, chunks
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self._chat)

    async def _chat(self, request: Request):
        body = await request.json()
        if self.record:
            self.received.append({"headers": dict(request.headers), "body": body})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status >= 400:
            return JSONResponse(
                {"error": {"message": "upstream failure", "type": "server_error", "code": None}},
                status_code=self.status,
            )
        model = body.get("model")
        if body.get("stream"):
            return StreamingResponse(self._stream(model), media_type="text/event-stream")
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": f"answer from {model}"},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
        }

    async def _stream(self, model: str):
        for i in range(self.chunks):
            if i and self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": f"part{i} "}, "finish_reason": None}],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"


@contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a daemon thread (port 0: a free one); yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # log_config=None: leave the host process's logging alone (tests capture uvicorn's records as they are)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server thread did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
