"""Request logging: one line per request (method, path, status, bytes, milliseconds, and the
DALI RUNID and ignored parameters of IVOA requests), and a
``Server-Timing`` header so that clients and benchmarks see the server-side time.

A plain ASGI middleware (no per-request task or body buffering), because it wraps every
request of a service meant to answer a thousand of them per second.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("skyreg.service.access")

Scope = dict[str, Any]


class AccessLog:
    def __init__(self, app: Any, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        size = 0

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = (time.perf_counter() - start) * 1000.0
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed:.3f}".encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if self.enabled:
                query = scope.get("query_string", b"").decode("latin-1")
                path = scope.get("path", "") + (f"?{query}" if query else "")
                client = scope.get("client") or ("-", 0)
                state = scope.get("state") or {}
                extra = "".join(f" {name}={state[name]!r}" for name in ("runid", "ignored")
                                if name in state)
                log.info('%s "%s %s" %d %d %.1fms%s', client[0], scope.get("method", ""),
                         path[:2000], status, size, (time.perf_counter() - start) * 1000.0,
                         extra)
