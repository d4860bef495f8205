"""A browser tab's chat socket against a real Daphne, for end-to-end socket tests."""

from __future__ import annotations

import asyncio
import json
import time

import websockets
from asgiref.sync import sync_to_async

from tests.support.sessions import session_cookie_for


class Tab:
    def __init__(self, ws):
        self.ws = ws

    async def send(self, **frame):
        await self.ws.send(json.dumps(frame))

    async def frames_until(self, *types: str, timeout: float = 20) -> list[dict]:
        """Frames up to the first of ``types``; stops early (without error) if the server closes."""
        frames: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
            except websockets.ConnectionClosed:
                return frames
            frames.append(json.loads(raw))
            if frames[-1].get("type") in types:
                return frames

    async def quiet(self, seconds: float) -> list[dict]:
        """Every frame received within ``seconds`` (for asserting what must not arrive)."""
        frames: list[dict] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frames.append(json.loads(await asyncio.wait_for(self.ws.recv(), left)))
            except (TimeoutError, websockets.ConnectionClosed):
                break
        return frames


async def open_tab(base: str, user) -> Tab:
    cookie = await sync_to_async(session_cookie_for)(user)
    ws = await websockets.connect(
        base.replace("http://", "ws://") + "/ws/events/",
        additional_headers={"Cookie": cookie},
        origin=base,
        open_timeout=5,
        max_size=2**22,
    )
    tab = Tab(ws)
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
    return tab
