"""A scripted OpenAI-compatible chat server for tests.

A real HTTP server on 127.0.0.1 in a background thread, so code under test goes
through the real ``openai`` client, real sockets and real timeouts. Each request
to ``POST /v1/chat/completions`` takes the next scripted :class:`Reply`::

    with ScriptedOpenAI() as srv:
        srv.script(
            Reply.rate_limited(retry_after=1),
            Reply(tokens=["Hel", "lo"], delay=0.01),
        )
        config = LLMConfig(base_url=srv.base_url, api_key="test", model="m")
        ...
        assert srv.requests[1].body["model"] == "m"

When the script runs out, the ``default`` reply answers (pass ``default=None``
to get HTTP 500 "script exhausted" instead, which makes a forgotten reply loud).
Every request is recorded (:class:`RecordedRequest`): its JSON body, how many
tokens were sent, and whether the client hung up.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordedRequest", "Reply", "ScriptedOpenAI", "refused_base_url"]


@dataclass(frozen=True)
class Reply:
    """How the server answers one request.

    ``tokens`` are streamed one SSE chunk each, ``delay`` seconds apart
    (``first_delay`` before the first one, after the headers went out). A
    non-streaming request gets them joined as one message. With ``timestamps``,
    each streamed token ends with the server's clock (``time.time()``, 6
    decimals) and a space at the moment it is written, so a client can measure
    how long each token took to reach it (bench/chat_load.py).
    """

    tokens: tuple[str, ...] | list[str] = ("OK",)
    delay: float = 0.0
    first_delay: float = 0.0
    status: int = 200
    retry_after: str | None = None
    error_message: str = "scripted error"
    hang: bool = False
    drop_after: int | None = None
    error_after: int | None = None
    stall_after: int | None = None
    usage: bool = True
    finish_reason: str = "stop"
    model: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timestamps: bool = False

    @classmethod
    def error(cls, status: int = 500, message: str = "scripted error") -> Reply:
        """An HTTP error response with an OpenAI-shaped error body."""
        return cls(status=status, error_message=message)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 1) -> Reply:
        """HTTP 429, with a ``Retry-After`` header unless ``retry_after`` is None."""
        value = None if retry_after is None else str(retry_after)
        return cls(status=429, retry_after=value, error_message="rate limited")

    @classmethod
    def hanging(cls) -> Reply:
        """Accept the request, then send nothing until the client gives up."""
        return cls(hang=True)

    @classmethod
    def dropped(cls, tokens: Iterable[str], after: int, delay: float = 0.0) -> Reply:
        """Stream ``after`` tokens, then cut the connection without ending the body."""
        return cls(tokens=tuple(tokens), drop_after=after, delay=delay)

    @classmethod
    def error_mid_stream(
        cls, tokens: Iterable[str], after: int, message: str = "scripted error", delay: float = 0.0
    ) -> Reply:
        """Stream ``after`` tokens, then an OpenAI error event (``data: {"error": ...}``) and
        end the body, as vLLM and hosted APIs report a failure once the headers are sent."""
        return cls(tokens=tuple(tokens), error_after=after, error_message=message, delay=delay)

    @classmethod
    def stalled(cls, tokens: Iterable[str], after: int, delay: float = 0.0) -> Reply:
        """Stream ``after`` tokens, then send nothing more until the client gives up."""
        return cls(tokens=tuple(tokens), stall_after=after, delay=delay)


@dataclass
class RecordedRequest:
    """What the server saw of one request, filled in while it is served."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    reply: Reply | None = None
    tokens_sent: int = 0
    finished: bool = False
    disconnected: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.body, dict) and self.body.get("stream"))


class _ClientGone(Exception):
    """The client closed the connection while we were answering."""


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # load tests open many connections at once (the default is 5)


class ScriptedOpenAI:
    """The server; use it as a context manager (or call ``start`` / ``stop``)."""

    def __init__(self, *, default: Reply | None = Reply(), model: str = "scripted-model") -> None:
        self.default = default
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply | Callable[[RecordedRequest], Reply]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> ScriptedOpenAI:
        handler = type("Handler", (_Handler,), {"scripted": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """What to give the openai client (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(
        self, *replies: Reply | Callable[[RecordedRequest], Reply] | Iterable[Reply]
    ) -> None:
        """Queue replies, answered in order; a callable picks a reply per request."""
        with self._lock:
            for item in replies:
                if isinstance(item, Reply) or callable(item):
                    self._replies.append(item)
                else:
                    self._replies.extend(item)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._replies)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` chat requests have arrived (or fail the test)."""
        deadline = time.monotonic() + timeout
        while len(self.chat_requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.chat_requests)}")
            time.sleep(0.005)
        return self.chat_requests

    # -- used by the handler -----------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_reply(self, request: RecordedRequest) -> Reply | None:
        with self._lock:
            item = self._replies.popleft() if self._replies else self.default
        return item(request) if callable(item) else item


class _Handler(BaseHTTPRequestHandler):
    """Speaks just enough of the OpenAI chat API; HTTP/1.1 so SSE is chunked."""

    protocol_version = "HTTP/1.1"
    scripted: ScriptedOpenAI  # set on the per-server subclass
    timeout = 10  # idle keep-alive connections must not outlive a test run by much

    def setup(self) -> None:
        super().setup()
        # Each token is a small write; without this, Nagle's algorithm holds it
        # back until the client's delayed ACK (~40 ms), which skews timings.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            payload = {"object": "list", "data": [{"id": self.scripted.model, "object": "model"}]}
            self._send_json(200, payload)
        else:
            self._send_json(404, _error_body("not found", 404))

    def do_POST(self) -> None:
        request = self._read_request()
        try:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send_json(404, _error_body("not found", 404))
                return
            reply = self.scripted._next_reply(request)
            request.reply = reply
            if reply is None:
                self._send_json(500, _error_body("script exhausted", 500))
                return
            self._answer(request, reply)
        except (_ClientGone, BrokenPipeError, ConnectionResetError):
            request.disconnected.set()
            self.close_connection = True
        finally:
            request.done.set()

    # -- answering ---------------------------------------------------------

    def _read_request(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = RecordedRequest("POST", self.path, dict(self.headers.items()), body)
        self.scripted._record(request)
        return request

    def _answer(self, request: RecordedRequest, reply: Reply) -> None:
        if reply.hang:
            self._wait(None)
            return
        if reply.status != 200:
            self._send_error_reply(reply)
            return
        if request.stream:
            self._stream(request, reply)
        else:
            self._wait(reply.first_delay + reply.delay * max(len(reply.tokens) - 1, 0))
            self._send_json(200, _completion_body(request, reply, self.scripted.model))
            request.finished = True

    def _send_error_reply(self, reply: Reply) -> None:
        extra = dict(reply.headers)
        if reply.retry_after is not None:
            extra["Retry-After"] = reply.retry_after
        self._send_json(reply.status, _error_body(reply.error_message, reply.status), extra)

    def _stream(self, request: RecordedRequest, reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        chunks = _StreamChunks(request, reply, self.scripted.model)
        self._wait(reply.first_delay)
        for index, token in enumerate(reply.tokens):
            if reply.drop_after is not None and index >= reply.drop_after:
                self._drop()
                return
            if reply.error_after is not None and index >= reply.error_after:
                self._end_with_error(reply)
                return
            if reply.stall_after is not None and index >= reply.stall_after:
                self._wait(None)
                return
            if index:
                self._wait(reply.delay)
            if reply.timestamps:
                token = f"{token}{time.time():.6f} "
            self._write_event(chunks.token(token))
            request.tokens_sent += 1
        if reply.drop_after is not None and reply.drop_after >= len(reply.tokens):
            self._drop()
            return
        self._write_event(chunks.finish())
        if reply.usage and _wants_usage(request.body):
            self._write_event(chunks.usage())
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # the zero-length chunk that ends the body
        request.finished = True

    def _end_with_error(self, reply: Reply) -> None:
        """An error event in place of the rest of the answer, then a well-formed end."""
        self._write_event(_error_body(reply.error_message, 500))
        self._write_chunk(b"")
        self.close_connection = True

    def _write_event(self, payload: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Cut the connection without the final chunk, like a crashed server."""
        self.close_connection = True
        with contextlib.suppress(OSError):  # already gone is fine too
            self.connection.shutdown(socket.SHUT_RDWR)

    def _wait(self, seconds: float | None) -> None:
        """Sleep, but notice at once if the client hangs up (or the server stops).

        Watching the socket rather than sleeping blindly is what lets tests
        assert that a cancelled stream really closed the connection.
        """
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self.scripted._stopping.is_set():
            remaining = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if remaining <= 0:
                return
            readable, _, _ = select.select([self.connection], [], [], remaining)
            if readable and self._peer_closed():
                raise _ClientGone
        if seconds is None:
            raise _ClientGone  # server stopping: abandon the hanging request

    def _peer_closed(self) -> bool:
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (ConnectionResetError, OSError):
            return True

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class _StreamChunks:
    """Builds the ``chat.completion.chunk`` objects of one streamed reply."""

    def __init__(self, request: RecordedRequest, reply: Reply, default_model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        self.created = int(time.time())
        self.model = reply.model or request.model or default_model
        self.request = request
        self.reply = reply

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def token(self, text: str) -> dict[str, Any]:
        delta = {"content": text}
        if not self.request.tokens_sent:
            delta = {"role": "assistant", **delta}
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": None}])

    def finish(self) -> dict[str, Any]:
        return self._chunk([{"index": 0, "delta": {}, "finish_reason": self.reply.finish_reason}])

    def usage(self) -> dict[str, Any]:
        return self._chunk([], usage=_usage(self.request.body, self.reply))


def _wants_usage(body: Any) -> bool:
    options = body.get("stream_options") if isinstance(body, dict) else None
    return bool(isinstance(options, dict) and options.get("include_usage"))


def _usage(body: Any, reply: Reply) -> dict[str, int]:
    """Deterministic fake counts: one prompt token per word, one per streamed token."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion = len(reply.tokens)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion_body(request: RecordedRequest, reply: Reply, default_model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or request.model or default_model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(reply.tokens)},
                "finish_reason": reply.finish_reason,
            }
        ],
    }
    if reply.usage:
        body["usage"] = _usage(request.body, reply)
    return body


def _error_body(message: str, status: int) -> dict[str, Any]:
    kind = (
        "rate_limit_error"
        if status == 429
        else "server_error"
        if status >= 500
        else "invalid_request_error"
    )
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def refused_base_url() -> str:
    """A base URL where nothing listens: connecting is refused at once, like a model server
    that is down. The port was free a moment ago; nothing in a test binds it again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
