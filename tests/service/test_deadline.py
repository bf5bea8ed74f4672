"""Request deadlines: past its deadline a request answers 503 and its work stops; the work of a
client that went away stops too; and nothing a stopped request wrote is kept."""

from __future__ import annotations

import asyncio
import threading
import time

from sqlalchemy import event, func, select
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from service.deadline import RequestDeadline, RequestStopped, _current, check_deadline
from service.models import Task


class Worker:
    """A sync handler that works in a loop with a check point, as a long query loop does."""

    def __init__(self, works_s: float = 10.0) -> None:
        self.works_s = works_s
        self.stopped = threading.Event()
        self.finished = threading.Event()

    def handler(self, _request) -> PlainTextResponse:
        deadline = time.monotonic() + self.works_s
        try:
            while time.monotonic() < deadline:
                check_deadline()
                time.sleep(0.01)
        except RequestStopped:
            self.stopped.set()
            raise
        self.finished.set()
        return PlainTextResponse("done")


def _sleeper(_request) -> PlainTextResponse:
    time.sleep(3)  # a thread that never reaches a check point
    return PlainTextResponse("late")


def _app(worker: Worker, seconds: float) -> RequestDeadline:
    async def fast(_request):
        return PlainTextResponse("ok")

    async def stopped(_request, exc):
        return PlainTextResponse(exc.message, status_code=exc.status_code)

    routes = [
        Route("/sleep", _sleeper),
        Route("/work", worker.handler),
        Route("/fast", fast),
        Route("/healthz", worker.handler),
    ]
    app = Starlette(routes=routes, exception_handlers={RequestStopped: stopped})
    return RequestDeadline(app, seconds)


async def _call(app, path: str, disconnect_after: float | None = None, timeout: float = 10.0):
    """Drive the ASGI app as a server would: the body, then a disconnect (if asked) or nothing
    until the answer. Returns the messages sent."""
    sent: list[dict] = []
    delivered = False
    gone = asyncio.Event()

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    scope |= {"root_path": "", "scheme": "http", "server": ("test", 80), "client": ("c", 1)}
    if disconnect_after is not None:
        asyncio.get_running_loop().call_later(disconnect_after, gone.set)
    await asyncio.wait_for(app(scope, receive, send), timeout)
    return sent


def _status(sent: list[dict]) -> int | None:
    return next((m["status"] for m in sent if m["type"] == "http.response.start"), None)


def test_past_its_deadline_a_request_answers_503_and_its_thread_stops():
    worker = Worker()
    started = time.monotonic()
    sent = asyncio.run(_call(_app(worker, 0.3), "/work"))
    assert _status(sent) == 503
    assert b"deadline" in b"".join(m.get("body", b"") for m in sent)
    assert worker.stopped.is_set() and not worker.finished.is_set()
    assert time.monotonic() - started < 3


def test_a_thread_that_never_checks_is_answered_for_but_keeps_its_slot_until_it_ends():
    started = time.monotonic()
    sent = asyncio.run(_call(_app(Worker(), 0.3), "/sleep"))
    took = time.monotonic() - started
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [503]
    assert b"deadline_exceeded" in b"".join(m.get("body", b"") for m in sent)  # ours, once
    assert took >= 2.9  # the call (and so the admission slot around it) lasted as the thread


def test_a_client_expecting_100_continue_is_not_read_before_the_handler_reads():
    reads = []

    async def receive():
        reads.append(time.monotonic())
        return {"type": "http.request", "body": b"", "more_body": False}

    async def refuse_unread(_request):
        return PlainTextResponse("too large", status_code=413)

    app = RequestDeadline(Starlette(routes=[Route("/up", refuse_unread, methods=["POST"])]), 5)
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    headers = [(b"expect", b"100-continue"), (b"content-length", b"100000000")]
    scope = {"type": "http", "method": "POST", "path": "/up", "headers": headers}
    scope |= {"query_string": b"", "root_path": "", "scheme": "http", "server": ("t", 80)}
    asyncio.run(app(scope, receive, send))
    assert _status(sent) == 413 and reads == []  # no read: the server never says 100 Continue


def test_a_client_that_went_away_stops_the_work():
    worker = Worker()
    started = time.monotonic()
    asyncio.run(_call(_app(worker, 0), "/work", disconnect_after=0.2))  # no deadline at all
    assert worker.stopped.is_set() and not worker.finished.is_set()
    assert time.monotonic() - started < 3


def test_a_quick_request_and_the_exempt_paths_are_untouched():
    worker = Worker()
    sent = asyncio.run(_call(_app(worker, 0.3), "/fast", disconnect_after=0.5))
    assert _status(sent) == 200
    worker_free = Worker(works_s=0.5)
    sent = asyncio.run(_call(_app(worker_free, 0.05), "/healthz"))
    assert _status(sent) == 200 and worker_free.finished.is_set()  # health has no deadline


def test_a_request_stopped_in_the_middle_of_its_writes_keeps_none_of_them(
    client, keys, upload, session_factory
):
    engine = client.app.state.context.engine

    def expire_after_the_task_insert(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO TASKS"):
            deadline = _current.get()
            if deadline is not None:
                deadline.expires_at = 0.0  # the deadline passes right after this write

    event.listen(engine, "after_cursor_execute", expire_after_the_task_insert)
    try:
        response = upload(keys.alice, "late")
    finally:
        event.remove(engine, "after_cursor_execute", expire_after_the_task_insert)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "deadline_exceeded" and "rolled back" in body["message"]
    assert response.headers["retry-after"] == "1"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 0
    assert client.get("/healthz").status_code == 200
    assert upload(keys.alice, "in-time").status_code == 201  # the next request is unaffected
