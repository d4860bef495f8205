"""A small web site on 127.0.0.1 whose pages a test changes between runs: added, changed,
removed, answering 404/410, redirecting elsewhere, oversized, slow. It honours conditional requests
(ETag / If-None-Match, Last-Modified / If-Modified-Since) the way a real server does, and
records every request with its headers.

Loopback is refused by the fetcher unless allowed: tests allow the site by host name
(``URL_FETCH_ALLOWED_HOSTS = ["localhost"]``), so 127.0.0.1 written as an address stays a
private address the rules refuse (a redirect there is the SSRF case)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LAST_MODIFIED = "Mon, 30 Nov 2026 08:00:00 GMT"


@dataclass
class Page:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    location: str = ""  # for a redirect
    etag: bool = True  # send an ETag (and honour If-None-Match)
    last_modified: str = LAST_MODIFIED
    delay: float = 0.0  # seconds before answering (cut short when the site stops)


@dataclass
class Request:
    path: str
    headers: dict[str, str]


@dataclass
class Site:
    host: str
    port: int
    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    def stop(self) -> None:
        """The site becomes unreachable (its port refuses connections); idempotent."""
        self.stopping.set()  # a slow answer still pending ends now
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def put(self, path: str, body: str | bytes, **options) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.pages[path] = Page(body=data, **options)

    def remove(self, path: str, status: int = 404) -> None:
        self.pages[path] = Page(status=status, body=b"gone", content_type="text/plain")

    def requests_for(self, path: str) -> list[Request]:
        with self.lock:
            return [request for request in self.requests if request.path == path]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        site = self.server.site
        with site.lock:
            site.requests.append(
                Request(self.path, {k.lower(): v for k, v in self.headers.items()})
            )
        page = site.pages.get(self.path.split("?", 1)[0])
        if page is None:
            return self._reply(404, b"missing", "text/plain", {})
        if page.delay and site.stopping.wait(page.delay):
            return None  # the site stopped while this answer was pending
        if page.location:
            return self._reply(page.status, b"", "text/plain", {"Location": page.location})
        headers = {}
        if page.status == 200:
            tag = '"' + hashlib.sha256(page.body).hexdigest()[:16] + '"'
            if page.etag:
                headers["ETag"] = tag
                if self.headers.get("If-None-Match") == tag:
                    return self._reply(304, b"", None, headers)
            if page.last_modified:
                headers["Last-Modified"] = page.last_modified
        return self._reply(page.status, page.body, page.content_type, headers)

    def _reply(self, status: int, body: bytes, content_type: str | None, headers: dict) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site


@contextmanager
def serve_site(host: str = "localhost") -> Iterator[Site]:
    """A site on 127.0.0.1 (a free port), named ``host`` in its URLs; stopped on exit."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.site = Site(host=host, port=server.server_address[1], server=server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.site
    finally:
        server.site.stop()
