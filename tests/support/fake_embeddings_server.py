"""A tiny real HTTP server speaking OpenAI's ``POST /v1/embeddings``, for tests.

It listens on 127.0.0.1 (an OS-chosen port by default), records every call and
answers with deterministic unit vectors, unless a scripted response is queued:

    with FakeEmbeddingsServer(dimensions=8) as server:
        server.enqueue(Scripted(status=429, headers={"Retry-After": "0"}))
        client = OpenAI(base_url=server.base_url, api_key="test")
        ...
        assert server.calls[0].body["model"] == "fake-embed"

Scripted responses are consumed in order, one per request; once the queue is empty
the server answers normally again. ``python -m tests.support.fake_embeddings_server``
runs it in the foreground for manual tries.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Scripted:
    """One canned answer. ``body=None`` with status 200 means "the normal answer"."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0
    dimensions: int | None = None  # for the normal answer: vectors of another size


@dataclass(frozen=True)
class RecordedCall:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector)."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def error_body(message: str, *, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": None}}


class FakeEmbeddingsServer:
    """Start with ``start()`` or a ``with`` block; ``base_url`` ends in ``/v1``."""

    def __init__(self, *, dimensions: int = 8, model: str = "fake-embed", port: int = 0) -> None:
        self.dimensions = dimensions
        self.model = model
        self.calls: list[RecordedCall] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeEmbeddingsServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeEmbeddingsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, *responses: Scripted) -> None:
        with self._lock:
            self._script.extend(responses)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.calls.clear()

    # -- used by the handler -------------------------------------------------

    def _record(self, call: RecordedCall) -> Scripted | None:
        with self._lock:
            self.calls.append(call)
            return self._script.popleft() if self._script else None

    def _answer(self, body: dict[str, Any], scripted: Scripted | None) -> tuple[int, dict, dict]:
        scripted = scripted or Scripted()
        if scripted.delay:
            time.sleep(scripted.delay)
        if scripted.body is not None or scripted.status != 200:
            payload = scripted.body if scripted.body is not None else error_body("scripted error")
            return scripted.status, scripted.headers, payload
        return 200, scripted.headers, self._embeddings(body, scripted.dimensions)

    def _embeddings(self, body: dict[str, Any], dimensions: int | None) -> dict[str, Any]:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        dims = dimensions or body.get("dimensions") or self.dimensions
        data = []
        for index, text in enumerate(inputs):
            vector = fake_vector(text, dims)
            if body.get("encoding_format") == "base64":
                packed = struct.pack(f"<{dims}f", *vector)
                embedding: Any = base64.b64encode(packed).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(text.split()) for text in inputs)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", self.model),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


def _invalid_input(body: dict[str, Any]) -> str | None:
    inputs = body.get("input")
    if not body.get("model"):
        return "you must provide a model parameter"
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return "'input' must be a non-empty string or array of strings"
    if not all(isinstance(text, str) and text for text in inputs):
        return "'input' must not contain empty strings"
    return None


def _handler_for(server: FakeEmbeddingsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_raw": raw.decode(errors="replace")}
            headers = {name.lower(): value for name, value in self.headers.items()}
            call = RecordedCall("POST", self.path, headers, body)
            scripted = server._record(call)
            if self.path.rstrip("/") != "/v1/embeddings":
                self._send(404, {}, error_body(f"no route {self.path}", type_="not_found"))
                return
            problem = _invalid_input(body) if scripted is None else None
            if problem:
                self._send(400, {}, error_body(problem))
                return
            self._send(*server._answer(body, scripted))

        def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            # The client may have given up already (timeout tests): nothing left to tell it.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep test output quiet

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--dimensions", type=int, default=384)
    args = parser.parse_args()
    server = FakeEmbeddingsServer(dimensions=args.dimensions, port=args.port)
    print(f"fake embeddings server on {server.base_url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
