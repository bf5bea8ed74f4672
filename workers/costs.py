"""What a transfer cost next to what it gained. Torch-free: the API computes it from stored
stages, the CLI from a fresh ``TransferResult``, both with ``transfer_cost``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class TimedStage(Protocol):
    seconds: float
    train_examples: dict[str, int]
    peak_memory_mb: float | None
    cached: bool


def transfer_cost(spent: Iterable[TimedStage], gain: float) -> dict | None:
    """The source and transfer stages' cost (the baseline's are not the user's: pass them not).

    ``seconds``, ``examples`` and ``peak_memory_mb`` are what this run spent; a cached adapter's
    training is not, and is counted apart in ``cached_seconds``. ``gain_per_hour`` is the mean
    gain per hour of this run; ``gain_per_hour_with_cached`` counts the cached training too (what
    the first transfer from those sources cost). None without timed stages."""
    stages = list(spent)
    ran = [s for s in stages if not s.cached]
    seconds = sum(s.seconds for s in ran)
    cached_seconds = sum(s.seconds for s in stages if s.cached)
    if not stages or seconds + cached_seconds <= 0:
        return None
    peaks = [s.peak_memory_mb for s in ran if s.peak_memory_mb is not None]
    return {
        "seconds": round(seconds, 2),
        "examples": sum(sum(s.train_examples.values()) for s in ran),
        "peak_memory_mb": round(max(peaks), 1) if peaks else None,
        "gain_per_hour": round(gain / seconds * 3600, 3) if seconds > 0 else None,
        "cached_seconds": round(cached_seconds, 2),
        "gain_per_hour_with_cached": round(gain / (seconds + cached_seconds) * 3600, 3),
    }
