"""Request deadlines: a request that runs too long, or whose client went away, stops its work.

``RequestDeadline`` (pure ASGI middleware) gives each request a deadline and watches for the
client's disconnect. When either comes first, the work stops cooperatively: a sync handler's
thread cannot be killed, so ``check_deadline()`` raises ``RequestStopped`` in it at its next
check point, and the request ends itself with a 503 ``deadline_exceeded`` (its open unit of work
rolled back). The database engine checks before every statement (``watch_engine``), and the API's
PostgreSQL connections carry a ``statement_timeout`` of the deadline, so a handler stops at its
next query or inside a stuck one. A handler that does not end within a short grace gets its 503
sent for it and is still awaited, holding its admission slot, up to ``STOP_CAP_S``.

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

STOP_GRACE_S = 2.0  # how long a stopped request has to end itself before the 503 is sent
STOP_CAP_S = 60.0  # past this a stopped request is cancelled (its slot freed) whatever it does


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
                "the request ran past its deadline and was stopped; what it had not committed "
                "was rolled back",
                headers={"Retry-After": "1"},
            )


_current: ContextVar[Deadline | None] = ContextVar("taskrec_request_deadline", default=None)


def check_deadline() -> None:
    """Raise ``RequestStopped`` when the current request should stop (no-op outside one: jobs,
    commands). Context variables follow a request into its thread-pool thread."""
    deadline = _current.get()
    if deadline is not None:
        deadline.check()


def remaining_s() -> float:
    """Seconds the current request has left (infinite outside one, or without a deadline)."""
    deadline = _current.get()
    return float("inf") if deadline is None else deadline.expires_at - time.monotonic()


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
        watched = _DisconnectWatch(receive, deadline, eager=not _expects_continue(scope))
        reply = _Reply(send, watched)
        handler = asyncio.ensure_future(self.app(scope, watched.receive, reply.send))
        try:
            if await self._stopped(handler, deadline, watched):
                await self._wind_down(handler, deadline, reply)
            else:
                await handler  # re-raises what the app raised
        finally:
            watched.stop()
            _current.reset(token)

    async def _stopped(self, handler: asyncio.Future, deadline: Deadline, watched) -> bool:
        """Wait for the handler; True when its deadline passed or its client left first."""
        timeout = None if deadline.expires_at == float("inf") else self.seconds
        gone = asyncio.ensure_future(watched.gone.wait())
        try:
            done, _ = await asyncio.wait(
                {handler, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
        return handler not in done and not watched.answered  # answered: let it finish

    async def _wind_down(self, handler: asyncio.Future, deadline: Deadline, reply) -> None:
        """Stop the handler's work and answer for it.

        A thread cannot be cancelled: at its next check point it raises ``RequestStopped`` and
        the request ends itself (its open unit of work rolls back). Past a short grace the
        client gets the 503 from here, and the handler is still awaited, not cancelled, so the
        request keeps its admission slot while its thread runs; only past ``STOP_CAP_S`` is it
        cancelled (async work ends there; a thread that never checks is logged and left)."""
        gone = deadline.abandoned.is_set()
        log.warning("request stopped: %s", "client went away" if gone else "deadline passed")
        deadline.expires_at = 0.0
        if await _finished_within(handler, STOP_GRACE_S):
            return
        if not gone and not reply.started:
            reply.muted = True  # whatever the handler sends later goes nowhere
            message = f"the request ran past its {self.seconds:g} s deadline and was stopped"
            await refuse(reply.downstream, 503, RequestStopped.code, message)
        if await _finished_within(handler, STOP_CAP_S):
            return
        log.error("a stopped request still ran after %g s: cancelled", STOP_CAP_S)
        handler.cancel()
        with contextlib.suppress(asyncio.CancelledError, RequestStopped):
            await handler


async def _finished_within(handler: asyncio.Future, seconds: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(handler), seconds)
    except TimeoutError:
        return False
    except (asyncio.CancelledError, RequestStopped):
        return True
    return True


def _expects_continue(scope: Scope) -> bool:
    """A client sending ``Expect: 100-continue`` waits for the server's first read before it
    sends the body: reading early would invite a body the handler may refuse unread."""
    return any(k == b"expect" and v.lower() == b"100-continue" for k, v in scope["headers"])


class _Reply:
    """The handler's ``send``: notes when the answer started and ended; muted once the
    middleware answered for a stopped handler."""

    def __init__(self, downstream: Send, watched) -> None:
        self.downstream, self.watched = downstream, watched
        self.started = self.muted = False

    async def send(self, message: Message) -> None:
        if self.muted:
            return
        self.started = self.started or message["type"] == "http.response.start"
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.watched.answered = True  # a disconnect from now on is the connection's end
        await self.downstream(message)


class _DisconnectWatch:
    """Relays ``receive`` through a one-message queue, so that once the body has been handed
    over the relay is already waiting for the next message, the client's disconnect, even
    while the handler never asks (a GET's sync handler). One message at a time keeps the
    server's flow control: an upload is read no faster than the handler reads it. ``eager``
    False (``Expect: 100-continue``): the relay starts at the handler's first read."""

    def __init__(self, receive: Receive, deadline: Deadline, eager: bool = True) -> None:
        self._receive, self._deadline = receive, deadline
        self._queue: asyncio.Queue[Message | BaseException] = asyncio.Queue(maxsize=1)
        self._closed = False
        self.gone = asyncio.Event()
        self.answered = False
        self._relay: asyncio.Future | None = None
        if eager:
            self._start()

    async def receive(self) -> Message:
        if self._closed:
            return {"type": "http.disconnect"}  # asked again after the end: the same answer
        self._start()
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._closed = True
            raise item
        if item["type"] == "http.disconnect":
            self._closed = True
        return item

    def _start(self) -> None:
        if self._relay is None:
            self._relay = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        while True:
            try:
                message = await self._receive()
            except Exception as exc:  # the server's receive failed: the handler hears it
                await self._queue.put(exc)
                return
            if message["type"] == "http.disconnect" and not self.answered:
                self._deadline.abandoned.set()
                self.gone.set()
            await self._queue.put(message)
            if message["type"] == "http.disconnect":
                return

    def stop(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
