"""The per-key limit shared through a real Redis: two API processes drain one bucket."""

from __future__ import annotations

import os
import uuid

import pytest

from service.auth.ratelimit import RateLimiter, RedisRateLimiter, make_limiter

REDIS_URL = os.environ.get("TASKREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture()
def prefix() -> str:
    return f"taskrec-test-{uuid.uuid4().hex[:8]}"  # a bucket no other test run touches


def test_processes_sharing_redis_share_one_bucket(prefix):
    first, second = (RedisRateLimiter(4, REDIS_URL, prefix) for _ in range(2))
    waits = [limiter.acquire(7) for limiter in (first, second, first, second, first)]
    assert waits[:4] == [0.0] * 4
    assert 0 < waits[4] <= 15.0  # 4 a minute: the next token comes within 15 s
    assert second.acquire(8) == 0.0  # another key has its own bucket


def test_in_memory_limits_are_per_process():
    first, second = RateLimiter(2), RateLimiter(2)
    assert [first.acquire(1), first.acquire(1), second.acquire(1)] == [0.0, 0.0, 0.0]
    assert first.acquire(1) > 0


def test_unreachable_redis_lets_requests_through(prefix):
    limiter = RedisRateLimiter(1, "redis://127.0.0.1:1/0", prefix)  # nothing listens there
    assert limiter.acquire(1) == 0.0 and limiter.acquire(1) == 0.0


def test_the_setting_picks_the_limiter(prefix):
    assert isinstance(make_limiter(5, None, prefix), RateLimiter)
    assert isinstance(make_limiter(5, REDIS_URL, prefix), RedisRateLimiter)


@pytest.fixture()
def settings_overrides(prefix):
    # A namespace of its own: key ids restart at 1 in every test database.
    return {
        "rate_limit_per_minute": 3,
        "rate_limit_redis_url": REDIS_URL,
        "queue_namespace": prefix,
    }


def test_the_api_answers_429_from_the_shared_bucket(client, keys, session_factory):
    from sqlalchemy import select

    from service.db import unit_of_work
    from service.models import ApiKey, Owner

    statuses = [client.get("/v1/me", headers=keys.alice).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    with unit_of_work(session_factory) as session:
        query = select(ApiKey.id).join(Owner, Owner.id == ApiKey.owner_id)
        alice = session.scalar(query.where(Owner.name == "alice"))
    namespace = client.app.state.settings.queue_namespace
    other_process = RedisRateLimiter(3, REDIS_URL, f"taskrec:{namespace}")
    assert other_process.acquire(alice) > 0  # the bucket the API drained, seen from elsewhere
