"""A small HTTP server on 127.0.0.1 that speaks the part of Slack's Web API we use, and records calls.

    with SlackServer() as slack:
        slack.users["U1"] = {"email": "ada@example.com", "name": "Ada"}
        # users.info says: member of slack.team_id, email confirmed, unless the dict says
        # otherwise ("team_id", "is_email_confirmed", "deleted", "is_bot", "is_restricted",
        # "is_ultra_restricted", "is_stranger" are passed through).
        slack.script("chat.postMessage", SlackReply(status=429, headers={"Retry-After": "1"}))
        WebClient(base_url=slack.base_url) ...
        slack.calls_to("chat.update")

Also accepts POSTs to ``/respond/<anything>`` as a slash command's response_url.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass(frozen=True)
class SlackReply:
    status: int = 200
    body: dict | None = None
    headers: dict = field(default_factory=dict)


@dataclass
class Call:
    method: str
    params: dict
    at: float
    response: dict = field(default_factory=dict)


class SlackServer:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.users: dict[str, dict] = {}
        self.threads: dict[str, list[dict]] = {}
        self.team_id = "T1"  # the workspace the bot token belongs to (auth.test)
        self.bot_user_id = "UBOT"
        self._scripts: dict[str, deque[SlackReply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._ts = 1700000000.000100
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/respond/{name}"

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, method: str, *replies: SlackReply) -> None:
        with self._lock:
            self._scripts[method].extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._scripts.clear()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 30) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.calls_to(method)
            if len(calls) >= count:
                return calls
            time.sleep(0.05)
        raise AssertionError(
            f"{method} called {len(self.calls_to(method))} times, wanted {count}: {self.calls}"
        )

    # --- answering -------------------------------------------------------------------

    def _answer(self, method: str, params: dict) -> tuple[int, dict, dict]:
        call = Call(method, params, time.monotonic())
        with self._lock:
            scripted = self._scripts[method].popleft() if self._scripts[method] else None
        if scripted is not None and (scripted.status != 200 or scripted.body is not None):
            status, headers, body = (
                scripted.status,
                scripted.headers,
                scripted.body or {"ok": False, "error": "scripted"},
            )
        else:
            status, headers, body = 200, {}, self._default(method, params)
        call.response = body
        with self._lock:
            self.calls.append(call)
        return status, headers, body

    def _default(self, method: str, params: dict) -> dict:
        if method == "users.info":
            user = self.users.get(params.get("user", ""))
            if user is None:
                return {"ok": False, "error": "user_not_found"}
            flags = ("deleted", "is_bot", "is_restricted", "is_ultra_restricted", "is_stranger")
            return {
                "ok": True,
                "user": {
                    "id": params["user"],
                    "name": user.get("name", ""),
                    "team_id": user.get("team_id", self.team_id),
                    "is_email_confirmed": user.get("is_email_confirmed", True),
                    **{flag: user[flag] for flag in flags if flag in user},
                    "profile": {"email": user.get("email", ""), "real_name": user.get("name", "")},
                },
            }
        if method == "auth.test":
            return {
                "ok": True,
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
                "bot_id": "BBOT",
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{time.time():.6f}"}
        if method == "chat.postMessage":
            with self._lock:
                self._ts += 1
                ts = f"{self._ts:.6f}"
            return {
                "ok": True,
                "channel": params.get("channel"),
                "ts": ts,
                "message": {"text": params.get("text")},
            }
        if method == "chat.update":
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts")}
        if method == "conversations.replies":
            return {"ok": True, "messages": self.threads.get(params.get("ts", ""), [])}
        if method == "respond":
            return {}
        return {"ok": False, "error": "unknown_method"}


def _handler(server: SlackServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (slack_sdk reads with GET and query parameters)
            path, _, query = self.path.partition("?")
            self._serve(path, {k: v[-1] for k, v in parse_qs(query).items()})

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            path, _, query = self.path.partition("?")
            if self.headers.get("Content-Type", "").startswith("application/json"):
                params = json.loads(raw or "{}")
            else:
                params = {k: v[-1] for k, v in parse_qs(raw).items()}
            params.update({k: v[-1] for k, v in parse_qs(query).items()})
            self._serve(path, params)

        def _serve(self, path, params):
            if isinstance(params.get("blocks"), str):
                params["blocks"] = json.loads(params["blocks"])
            method = "respond" if path.startswith("/respond/") else path.removeprefix("/api/")
            status, headers, body = server._answer(method, params)
            payload = b"ok" if method == "respond" and status == 200 else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    return Handler
