"""A client that completes the WebSocket handshake and then never reads its socket cannot make
a real Daphne keep everything it is sent (assistant/project/backpressure.py).

The slow client is a raw TCP socket with a small receive buffer: it sends the upgrade request
and one ``ask`` frame, reads the 101 response, and never reads again. Once the kernel's buffers
and Twisted's 64 KiB are full, the server may pile up only ``WEBSOCKET_SEND_BUFFER_KB`` more
before it aborts the connection; the answer carries on and is saved. A client that reads gets
the whole long answer on the same server, never cut. The memory test measures the Daphne's
resident set while a flood of events goes to a client that never reads, with the bound and
without it (the numbers are printed for docs/BENCHMARKS.md; the assertions are generous).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from accounts.events import user_group
from assistant.models import Message
from tests.support import processes
from tests.support.answering import scripted_env
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.sessions import session_cookie_for
from tests.support.sockets import open_tab

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = "How do I book a flight?"
BOUND_KB = 256
WORD = "flight "  # 7 bytes
TOKEN = WORD * 300  # 2,100 characters: one delta frame each
LONG_ANSWER_TOKENS = 2500  # 5.2 MB of text, more than the kernel buffers of both ends hold
# 840 KB streamed as fast as the server writes, over three times the bound: a client that
# reads keeps up. (A client reading 8 MB at that speed through Python's websockets in a busy
# test process falls megabytes behind, and is rightly cut; a model streams a few hundred bytes
# a second.)
READ_ANSWER_TOKENS = 400
MB = 2**20


@pytest.fixture(scope="module")
def llm_server():
    # Module-scoped (the shared one is per test): the module's Daphne is started against it.
    with ScriptedOpenAI(default=None) as server:
        yield server


@pytest.fixture(scope="module")
def bounded(django_db_setup, django_db_blocker, llm_server):
    env = scripted_env(llm_server, WEBSOCKET_SEND_BUFFER_KB=str(BOUND_KB))
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**env)
    yield proc, port
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc)


class SlowClient:
    """A real WebSocket client that stops reading after the handshake."""

    def __init__(self, port: int, cookie: str) -> None:
        self.sock = socket.socket()
        # A small receive window: the kernel holds little on this side before the server's
        # writes back up.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        origin = f"http://127.0.0.1:{port}"
        self.sock.sendall(
            (
                f"GET /ws/events/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: {origin}\r\nCookie: {cookie}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)  # byte by byte: nothing after the headers is read
        assert head.startswith(b"HTTP/1.1 101"), head

    def send_json(self, frame: dict) -> None:
        payload = json.dumps(frame).encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def was_cut(self, timeout: float = 10) -> bool:
        """Reads at last: True when the server closed the connection (reset, or end of stream
        after what it had already sent)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(1)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(1 << 20):
                    return True
            except ConnectionResetError:
                return True
            except TimeoutError:
                return False
        return False

    def close(self) -> None:
        self.sock.close()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples a process's resident set every 20 ms until stopped; ``growth`` is the peak over
    the first sample."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss_bytes(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def settle(self, quiet: float = 1.0, timeout: float = 20) -> None:
        """Until the peak has not moved for ``quiet`` seconds (the server has taken in what it
        was sent), at most ``timeout``: a measurement waiting for its end, not a proof."""
        deadline = time.monotonic() + timeout
        last, since = self.peak, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet:
            time.sleep(0.05)
            if self.peak != last:
                last, since = self.peak, time.monotonic()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


def wait_for_log(proc, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.log_tail(1_000_000):
            return
        time.sleep(0.1)
    raise AssertionError(f"{proc.name} never logged {text!r}:\n{proc.log_tail()}")


def test_a_client_that_never_reads_a_long_answer_is_cut_off_and_the_answer_is_saved(
    bounded, llm_server, handbook, make_user
):
    proc, port = bounded
    user = make_user()
    llm_server.script(Reply(tokens=[TOKEN] * LONG_ANSWER_TOKENS))
    client = SlowClient(port, session_cookie_for(user))
    try:
        client.send_json({"type": "ask", "request_id": "r1", "text": QUESTION})
        wait_for_log(proc, "websocket closed: the client stopped reading", timeout=90)
        assert client.was_cut()
    finally:
        client.close()
    # The answer did not depend on its socket: it is written to the end and saved.
    deadline = time.monotonic() + 90
    answer = None
    while time.monotonic() < deadline:
        answer = Message.objects.filter(role="assistant", conversation__owner=user).first()
        if answer is not None and answer.status != "streaming":
            break
        time.sleep(0.2)
    assert answer is not None and answer.status == "complete", answer and answer.status
    assert len(answer.content) == len(TOKEN) * LONG_ANSWER_TOKENS
    assert proc.alive()


async def test_a_client_that_reads_gets_the_whole_long_answer_without_being_cut(
    bounded, llm_server, handbook, make_user
):
    _, port = bounded
    user = await sync_to_async(make_user)()
    llm_server.script(Reply(tokens=[TOKEN] * READ_ANSWER_TOKENS))
    tab = await open_tab(f"http://127.0.0.1:{port}", user)
    await tab.send(type="ask", request_id="r1", conversation_id=None, text=QUESTION)
    frames = await tab.until_type("done", timeout=60)
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert len(text) == len(TOKEN) * READ_ANSWER_TOKENS
    assert frames[-1]["message"]["status"] == "complete"
    await tab.send(type="ping")
    assert (await tab.until_type("pong"))[-1] == {"type": "pong"}
    await tab.close()


EVENT_BYTES = 8 * 1024
FLOOD_EVENTS = 1500  # 12 MB of events


async def flood(user_id: int) -> None:
    layer = get_channel_layer()
    padding = "x" * EVENT_BYTES
    for i in range(FLOOD_EVENTS):
        event = {"type": "source.updated", "source": {"id": i, "error": padding}}
        await layer.group_send(user_group(user_id), {"type": "user.event", "event": event})
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # within the channel's capacity, so none is dropped there


def flood_growth(proc, port: int, user) -> tuple[int, bool]:
    client = SlowClient(port, session_cookie_for(user))
    try:
        meter = PeakRss(proc.proc.pid)
        asyncio.run(flood(user.pk))
        meter.settle()
        growth = meter.stop()
        return growth, client.was_cut(timeout=2)
    finally:
        client.close()


def test_events_flooding_a_client_that_never_reads_grow_the_server_only_to_the_bound(
    bounded, llm_server, make_user, django_db_blocker
):
    proc, port = bounded
    bounded_growth, cut = flood_growth(proc, port, make_user())
    assert cut, "the server kept the socket of a client that never reads"

    unbounded, free_port = processes.start_daphne(
        **scripted_env(llm_server, WEBSOCKET_SEND_BUFFER_KB="0")
    )
    try:
        unbounded_growth, _ = flood_growth(unbounded, free_port, make_user())
    finally:
        processes.stop_and_discard_late_writes(unbounded)
    print(
        f"\nslow client, {FLOOD_EVENTS * EVENT_BYTES / MB:.0f} MB of events: Daphne RSS "
        f"+{bounded_growth / MB:.1f} MB with a {BOUND_KB} KB bound, "
        f"+{unbounded_growth / MB:.1f} MB without"
    )
    assert bounded_growth < 16 * MB
    assert unbounded_growth > bounded_growth
