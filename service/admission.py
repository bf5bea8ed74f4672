"""Admission control: a bounded number of requests in flight per API process and per key.

A request waits (without a thread or a database connection) up to ``wait_s`` for a free slot —
one of ``max_inflight`` in the process and one of ``max_per_key`` for its key — so a burst from
one key is served in turn rather than all at once. Past the wait, or when ``max_waiting``
requests already wait, it is answered at once: 429 (this key has enough in flight) or 503 (the
process is full), with ``Retry-After``. Health, readiness, metrics and the long-lived event
streams are never counted, queued or refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from starlette.types import ASGIApp, Receive, Scope, Send

EXEMPT = ("/healthz", "/readyz", "/metrics")
DOCS = ("/docs", "/redoc", "/openapi.json", "/static-offline-docs")


class AdmissionControl:
    """Pure ASGI middleware: a request holds its slot from its start to its last byte."""

    def __init__(
        self,
        app: ASGIApp,
        max_inflight: int,
        max_per_key: int,
        wait_s: float = 5.0,
        max_waiting: int = 400,
    ) -> None:
        self.app, self.max_inflight, self.max_per_key = app, max_inflight, max_per_key
        self.wait_s, self.max_waiting = wait_s, max_waiting
        self._inflight = 0
        self._waiting = 0
        self._per_key: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Condition | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        key = _key_of(scope)
        refusal = await self._admit(key)
        if refusal is not None:
            await refuse(send, *refusal)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            await self._release(key)

    async def _admit(self, key: str) -> tuple[int, str, str] | None:
        changed = self._condition()
        async with changed:
            if not self._fits(key):
                if self._waiting >= self.max_waiting:
                    return 503, "overloaded", "the server is at capacity; retry in a moment"
                self._waiting += 1
                try:
                    await asyncio.wait_for(changed.wait_for(lambda: self._fits(key)), self.wait_s)
                except TimeoutError:
                    return self._refusal(key)
                finally:
                    self._waiting -= 1
            self._inflight += 1
            self._per_key[key] = self._per_key.get(key, 0) + 1
            return None

    async def _release(self, key: str) -> None:
        changed = self._condition()
        async with changed:
            self._inflight -= 1
            left = self._per_key.get(key, 1) - 1
            if left:
                self._per_key[key] = left
            else:
                self._per_key.pop(key, None)
            changed.notify_all()

    def _fits(self, key: str) -> bool:
        process = self.max_inflight <= 0 or self._inflight < self.max_inflight
        mine = self.max_per_key <= 0 or self._per_key.get(key, 0) < self.max_per_key
        return process and mine

    def _refusal(self, key: str) -> tuple[int, str, str]:
        if self.max_inflight > 0 and self._inflight >= self.max_inflight:
            return 503, "overloaded", "the server is at capacity; retry in a moment"
        message = f"this key kept {self.max_per_key} requests in flight for {self.wait_s:g} s"
        return 429, "too_many_in_flight", message

    def _condition(self) -> asyncio.Condition:
        # One per event loop: a server has one; tests may start several in turn.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._changed = loop, asyncio.Condition()
        return self._changed


def exempt(path: str) -> bool:
    return path in EXEMPT or path.endswith("/events") or path.startswith(DOCS)


def _key_of(scope: Scope) -> str:
    """The caller's key as a digest (never kept in clear); anonymous requests share one."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return hashlib.blake2b(value, digest_size=12).hexdigest()
    return "anonymous"


async def refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": code, "message": message, "problems": None}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
