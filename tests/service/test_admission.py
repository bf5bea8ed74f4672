"""Back-pressure: bounded requests in flight per process and per key, a bounded burst, and a
busy or missing database answered with a fast 503, never a 500 or a hang."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from service.admission import AdmissionControl
from service.auth.ratelimit import RateLimiter
from service.dependencies import get_session


def _slow_app(release: asyncio.Event, wait_s: float = 0.2) -> AdmissionControl:
    async def slow(_request):
        await release.wait()
        return PlainTextResponse("done")

    async def fast(_request):
        return PlainTextResponse("ok")

    routes = [
        Route("/slow", slow),
        Route("/fast", fast),
        Route("/healthz", fast),
        Route("/v1/jobs/1/events", slow),
    ]
    app = Starlette(routes=routes)
    return AdmissionControl(app, max_inflight=5, max_per_key=2, wait_s=wait_s, max_waiting=3)


def _get(client, path: str, key: str):
    return asyncio.create_task(client.get(path, headers={"authorization": f"Bearer {key}"}))


def test_past_its_share_a_key_waits_then_is_told_to_retry():
    async def scenario():
        release = asyncio.Event()
        app = _slow_app(release)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            slow = [_get(client, "/slow", "one") for _ in range(2)]
            await asyncio.sleep(0.05)
            refused = await client.get("/slow", headers={"authorization": "Bearer one"})
            others = [_get(client, "/slow", f"k{i}") for i in range(3)]  # the process is full
            await asyncio.sleep(0.05)
            waiting = [_get(client, "/fast", f"w{i}") for i in range(3)]  # they queue...
            await asyncio.sleep(0.05)
            full = await client.get("/fast", headers={"authorization": "Bearer late"})  # ...so
            health = await client.get("/healthz")  # never counted or refused
            stream = _get(client, "/v1/jobs/1/events", "one")
            await asyncio.sleep(0.05)
            release.set()
            done = await asyncio.gather(*slow, *others, *waiting, stream)
            after = await client.get("/slow", headers={"authorization": "Bearer one"})
        return refused, full, health, done, after

    refused, full, health, done, after = asyncio.run(scenario())
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "too_many_in_flight"
    assert full.status_code == 503 and full.json()["error"] == "overloaded"
    assert health.status_code == 200
    assert [r.status_code for r in done] == [200] * 9  # the queued ones were served in turn
    assert after.status_code == 200


def test_a_burst_from_one_key_is_served_in_turn():
    async def scenario():
        release = asyncio.Event()
        release.set()
        app = _slow_app(release, wait_s=5.0)
        app.max_waiting = 400
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await asyncio.gather(*(_get(client, "/fast", "one") for _ in range(200)))

    answers = asyncio.run(scenario())
    assert [r.status_code for r in answers] == [200] * 200


def test_a_fresh_key_spends_only_the_burst_at_once():
    limiter = RateLimiter(600, burst=60)
    waits = [limiter.acquire(7) for _ in range(61)]
    assert waits[:60] == [0.0] * 60 and waits[60] == pytest.approx(0.1, abs=0.01)
    assert RateLimiter(0, burst=5).acquire(7) == 0.0  # 0 per minute: no limit at all


@pytest.mark.parametrize(
    "error",
    [SQLAlchemyTimeout("QueuePool limit reached"), OperationalError("SELECT 1", {}, Exception())],
)
def test_no_database_connection_is_a_fast_503(client, keys, error):
    def unavailable():
        raise error
        yield  # a generator dependency, as the real one

    client.app.dependency_overrides[get_session] = unavailable
    try:
        response = client.get("/v1/me", headers=keys.alice)
    finally:
        client.app.dependency_overrides.clear()
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert response.json()["error"] == "unavailable"
    assert client.get("/healthz").status_code == 200
