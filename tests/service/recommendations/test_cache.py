"""The rankings cache: least recently used goes first, entries expire, size 0 keeps nothing."""

from __future__ import annotations

from service.recommendations.cache import ResultCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_least_recently_used_entry_is_evicted():
    cache = ResultCache(2, ttl_s=60)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2 and (cache.hits, cache.misses) == (3, 1)


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = ResultCache(10, ttl_s=30, clock=clock)
    cache.put("a", 1)
    clock.now = 30.0
    assert cache.get("a") == 1
    clock.now = 30.5
    assert cache.get("a") is None and len(cache) == 0


def test_size_zero_disables_the_cache():
    cache = ResultCache(0, ttl_s=30)
    cache.put("a", 1)
    assert cache.get("a") is None and len(cache) == 0
