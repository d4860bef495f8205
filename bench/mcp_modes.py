"""The MCP SDK's own cost per request, stateless against stateful (docs/api.md, "MCP server").

No Django and no database: one trivial tool behind the SDK's session manager (JSON responses),
called over httpx's in-process ASGI transport, so only the transport's work is measured. The
two modes alternate twice; the first 20 calls of each run are dropped (warm-up)::

    .venv/bin/python bench/mcp_modes.py

Measured 2026-11-30 on the shared 2-core machine (other engineers' tests running): stateless
1.1-1.9 ms median, stateful 0.8-1.3 ms; about 0.3-0.6 ms a call for a fresh transport per
request, next to a token check (a query), a search (tens of ms) or an answer (seconds).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

server = MCPServer("bench")


@server.tool()
async def ping() -> dict:
    return {"ok": True}


HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
VERSION = "2025-06-18"


async def run(stateless: bool, calls: int = 300) -> tuple[float, float]:
    manager = StreamableHTTPSessionManager(
        app=server._lowlevel_server, json_response=True, stateless=stateless
    )
    async with manager.run():

        async def app(scope, receive, send):
            await manager.handle_request(scope, receive, send)

        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            headers = dict(HEADERS)
            init = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"},
                },
            }
            response = await client.post("/mcp", json=init, headers=headers)
            if session := response.headers.get("mcp-session-id"):
                headers |= {"mcp-session-id": session, "mcp-protocol-version": VERSION}
                ready = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                await client.post("/mcp", json=ready, headers=headers)
            times = []
            for i in range(calls):
                call = {
                    "jsonrpc": "2.0",
                    "id": i + 1,
                    "method": "tools/call",
                    "params": {"name": "ping", "arguments": {}},
                }
                started = time.perf_counter()
                response = await client.post("/mcp", json=call, headers=headers)
                assert response.status_code == 200, response.text
                times.append((time.perf_counter() - started) * 1000)
    kept = sorted(times[20:])
    return statistics.median(kept), kept[int(len(kept) * 0.95)]


async def main() -> None:
    for stateless in (True, False, True, False):
        median, p95 = await run(stateless)
        print(f"stateless={stateless}: median {median:.2f} ms, p95 {p95:.2f} ms")


if __name__ == "__main__":
    logging.disable(logging.INFO)  # the SDK logs every request at INFO
    asyncio.run(main())
