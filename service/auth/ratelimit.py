"""A token bucket per API key: in process memory, or in Redis so every API process shares it.

In memory, each API process limits on its own, so N processes let a key through N times as
often; with ``TASKREC_RATE_LIMIT_REDIS_URL`` set, one bucket per key lives in Redis and is
updated atomically by a Lua script, whichever process (or host) serves the request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)


class Limiter(Protocol):
    def acquire(self, key_id: int) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        ...


class RateLimiter:
    """``per_minute`` requests per key, at most ``burst`` of them at once."""

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.capacity = float(min(burst or per_minute, per_minute))
        self.rate = per_minute / 60.0  # tokens per second
        self._buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens, last refill)
        self._lock = threading.Lock()

    def acquire(self, key_id: int) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        if self.capacity <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0


# The same bucket as RateLimiter, on Redis's clock; the wait comes back as a string because
# Redis turns a Lua number into an integer.
_BUCKET = """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return tostring(wait)
"""


class RedisRateLimiter:
    """``per_minute`` requests per key across every process that shares ``url``.

    If Redis cannot be reached the request goes ahead (logged): a limiter that failed closed
    would turn a Redis outage into an API outage.
    """

    def __init__(
        self, per_minute: int, url: str, prefix: str = "taskrec", burst: int | None = None
    ) -> None:
        import redis

        self.capacity = float(min(burst or per_minute, per_minute))
        self.rate = per_minute / 60.0
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._bucket = self._client.register_script(_BUCKET)

    def acquire(self, key_id: int) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        import redis

        if self.capacity <= 0:
            return 0.0
        try:
            wait = self._bucket(
                keys=[f"{self.prefix}:ratelimit:{key_id}"], args=[self.capacity, self.rate]
            )
        except redis.RedisError as exc:
            log.warning("rate limit not applied: Redis unreachable (%s)", type(exc).__name__)
            return 0.0
        return float(wait)


def make_limiter(
    per_minute: int, redis_url: str | None, prefix: str, burst: int | None = None
) -> Limiter:
    """Shared through Redis when ``redis_url`` is set, else per process; a fresh key may spend
    ``burst`` requests at once, then ``per_minute`` a minute."""
    if redis_url:
        return RedisRateLimiter(per_minute, redis_url, prefix, burst)
    return RateLimiter(per_minute, burst)
