"""Prometheus metrics: request latency measured here; job counts, queue depth and job durations
read from the database at scrape time, so they cover every worker process, not just this one."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.context import AppContext
from service.db import unit_of_work
from service.jobs import repository as jobs
from service.models import JobState, utcnow
from service.recommendations import repository as library

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, float("inf"))
DURATION_WINDOW = timedelta(hours=24)


class Metrics:
    def __init__(self, context: Callable[[], AppContext | None]) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "taskrec_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.registry.register(_JobCollector(context))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _JobCollector:
    def __init__(self, context: Callable[[], AppContext | None]) -> None:
        self.context = context

    def collect(self):
        context = self.context()
        if context is None:
            return
        with unit_of_work(context.session_factory) as session:
            by_state = jobs.counts_by_state(session)
            queued = jobs.queued_by_queue(session)
            finished = jobs.durations(session, utcnow() - DURATION_WINDOW)
            library_size = library.library_total(session)
        states = GaugeMetricFamily(
            "taskrec_jobs", "Jobs by kind and state", labels=["kind", "state"]
        )
        kinds = {kind for kind, _ in by_state} | {"embed", "transfer"}
        for kind in sorted(kinds):
            for state in JobState.ALL:
                states.add_metric([kind, state], by_state.get((kind, state), 0))
        yield states
        depth = GaugeMetricFamily("taskrec_queue_depth", "Queued jobs by queue", labels=["queue"])
        for queue in sorted({"embed", "finetune", *queued}):
            depth.add_metric([queue], queued.get(queue, 0))
        yield depth
        yield _durations(finished)
        yield GaugeMetricFamily("taskrec_library_tasks", "Tasks in the library", value=library_size)


def _durations(finished) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "taskrec_job_duration_seconds",
        "Run time of jobs that succeeded in the last 24 h (embed; transfer = fine-tuning)",
        labels=["kind"],
    )
    by_kind: dict[str, list[float]] = {"embed": [], "transfer": []}
    for kind, started, ended in finished:
        by_kind.setdefault(kind, []).append((ended - started).total_seconds())
    for kind, values in sorted(by_kind.items()):
        buckets = [(_le(b), sum(1 for v in values if v <= b)) for b in DURATION_BUCKETS]
        family.add_metric([kind], buckets, sum_value=sum(values))
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(bound)


class MetricsMiddleware:
    """Times every HTTP request and labels it with its route template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(scope["method"], route, str(status["code"])).observe(
                time.perf_counter() - started
            )
