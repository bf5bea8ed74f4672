"""Request deadlines: a request that runs too long, or whose client went away, stops its work.

``RequestDeadline`` (pure ASGI middleware) gives each request a deadline and watches for the
client's disconnect once the body is read. Past the deadline a request that has not started its
answer gets a 503 ``deadline_exceeded``; a request whose client left is answered to nobody. In
both cases the handler is cancelled, and because a sync handler's thread cannot be killed, the
work stops cooperatively: ``check_deadline()`` raises in that thread at its next check point. The
database engine checks before every statement (``watch_engine``), so any handler stops at its
next query and its unit of work rolls back; long loops without queries call it themselves.

Health, readiness, metrics and the event streams (long-lived by design) have no deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admission import exempt, refuse
from service.errors import ServiceError

log = logging.getLogger(__name__)

STOP_GRACE_S = 2.0  # how long a stopped request's thread has to reach its next check point


class RequestStopped(ServiceError):
    """The request's work stops here: its deadline passed or its client went away (a client
    still listening gets the 503; its unit of work rolled back, so nothing was kept)."""

    status_code = 503
    code = "deadline_exceeded"
    description = "The request ran past its deadline (TASKREC_REQUEST_DEADLINE_S) and stopped"


@dataclass
class Deadline:
    expires_at: float  # time.monotonic()
    abandoned: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        if self.abandoned.is_set():
            raise RequestStopped("the client went away; the request was stopped")
        if time.monotonic() > self.expires_at:
            raise RequestStopped(
                "the request ran past its deadline and was stopped; nothing was kept",
                headers={"Retry-After": "1"},
            )


_current: ContextVar[Deadline | None] = ContextVar("taskrec_request_deadline", default=None)


def check_deadline() -> None:
    """Raise ``RequestStopped`` when the current request should stop (no-op outside one: jobs,
    commands). Context variables follow a request into its thread-pool thread."""
    deadline = _current.get()
    if deadline is not None:
        deadline.check()


def watch_engine(engine: Engine) -> None:
    """Check the request's deadline before every statement on ``engine``."""
    event.listen(engine, "before_cursor_execute", _before_statement)


def _before_statement(*_args) -> None:
    check_deadline()


class RequestDeadline:
    """Pure ASGI middleware: each request runs under a ``Deadline`` of ``seconds`` (0: none)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        expires = time.monotonic() + self.seconds if self.seconds > 0 else float("inf")
        deadline = Deadline(expires)
        token = _current.set(deadline)
        watched = _DisconnectWatch(receive, deadline)
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                watched.answered = True  # a disconnect from now on is the connection's end
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, watched.receive, tracked_send))
        try:
            await self._wait(handler, deadline, watched)
        finally:
            watched.stop()
            _current.reset(token)
        if handler.cancelled() and not deadline.abandoned.is_set() and not started:
            message = f"the request ran past its {self.seconds:g} s deadline and was stopped"
            await refuse(send, 503, RequestStopped.code, f"{message}; nothing was kept")

    async def _wait(self, handler: asyncio.Future, deadline: Deadline, watched) -> None:
        timeout = None if deadline.expires_at == float("inf") else self.seconds
        gone = asyncio.ensure_future(watched.gone.wait())
        try:
            done, _ = await asyncio.wait(
                {handler, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
        if handler in done or watched.answered:  # answered: background work may finish
            await handler  # re-raises what the app raised
            return
        why = "client went away" if deadline.abandoned.is_set() else "deadline passed"
        log.warning("request stopped: %s", why)
        deadline.expires_at = 0.0  # the handler's thread stops at its next check point
        # A thread cannot be cancelled: give it a moment to reach a check point and end the
        # request itself (its unit of work rolls back, its slot is held until then); async
        # work, or a thread that never checks, is then cancelled.
        try:
            await asyncio.wait_for(asyncio.shield(handler), STOP_GRACE_S)
        except TimeoutError:
            handler.cancel()
            with contextlib.suppress(asyncio.CancelledError, RequestStopped):
                await handler


class _DisconnectWatch:
    """Relays ``receive`` through a one-message queue, so that once the body has been handed
    over the relay is already waiting for the next message, the client's disconnect, even
    while the handler never asks (a GET's sync handler). One message at a time keeps the
    server's flow control: an upload is read no faster than the handler reads it."""

    def __init__(self, receive: Receive, deadline: Deadline) -> None:
        self._deadline = deadline
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=1)
        self.gone = asyncio.Event()
        self.answered = False
        self._relay = asyncio.ensure_future(self._pump(receive))

    async def receive(self) -> Message:
        return await self._queue.get()

    async def _pump(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect" and not self.answered:
                self._deadline.abandoned.set()
                self.gone.set()
            await self._queue.put(message)
            if message["type"] == "http.disconnect":
                return

    def stop(self) -> None:
        self._relay.cancel()
