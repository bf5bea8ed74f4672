"""The FastAPI application: ``create_app(settings)`` wires routers, errors, metrics and jobs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service.admission import AdmissionControl
from service.auth.ratelimit import make_limiter
from service.context import AppContext, build_context
from service.deadline import RequestDeadline
from service.errors import install_error_handlers
from service.logs import RequestId
from service.metrics import Metrics, MetricsMiddleware
from service.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """Task embeddings and intermediate-task recommendation as a service.

Authenticate with `Authorization: Bearer <key>` (keys come from `taskrec keys create`). Errors
have one shape: `{"error": code, "message": text, "problems": [...]}`.
"""


def create_app(settings: Settings | None = None, context: AppContext | None = None) -> FastAPI:
    """The API for ``settings``; the schema must already be at head (``taskrec db upgrade``)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context or build_context(settings, serving=True)
        app.state.context = ctx
        ctx.dispatcher.start(ctx)
        sweeper = asyncio.create_task(_sweep_staging(settings))
        try:
            yield
        finally:
            sweeper.cancel()
            ctx.close()
            app.state.context = None

    from importlib.metadata import version

    # /docs and /redoc from assets served by the app itself (fastapi-offline), never a CDN:
    # they work on a machine that reaches nothing outside
    app = FastAPIOffline(
        title="taskrec", version=version("taskrec"), description=DESCRIPTION, lifespan=lifespan
    )
    app.state.context = None
    app.state.settings = settings
    app.state.limiter = make_limiter(
        settings.rate_limit_per_minute,
        settings.rate_limit_redis_url,
        f"taskrec:{settings.queue_namespace}" if settings.queue_namespace else "taskrec",
        settings.rate_limit_burst,
    )
    app.state.metrics = Metrics(lambda: app.state.context)
    # Innermost: the deadline counts from admission, not from the wait for a slot
    app.add_middleware(RequestDeadline, seconds=settings.request_deadline_s)
    app.add_middleware(
        AdmissionControl,
        max_inflight=settings.max_inflight_requests,
        max_per_key=settings.max_inflight_per_key,
        wait_s=settings.admission_wait_s,
        max_waiting=settings.admission_max_waiting,
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestId)  # outermost: every line of the request carries its id
    install_error_handlers(app)
    _include_routers(app)
    from service.dashboard.mount import mount_dashboard

    mount_dashboard(app, settings)  # last: it renders the handlers' errors as pages there
    return app


async def _sweep_staging(settings: Settings) -> None:
    """Remove the staging folders of dead requests now (a ``kill -9`` mid-upload leaves one),
    then every ``staging_sweep_interval_s``, saying what was removed."""
    from service.tasks.uploads import remove_dead_staging

    while True:
        removed, size = await asyncio.to_thread(
            remove_dead_staging, settings.staging_dir, settings.staging_max_age_s
        )
        if removed:
            log.info("removed %d staging folder(s) of dead requests (%d bytes)", removed, size)
        await asyncio.sleep(settings.staging_sweep_interval_s)


def _include_routers(app: FastAPI) -> None:
    from service.adapters.router import router as adapters
    from service.auth.router import router as auth
    from service.batches.router import router as batches
    from service.embeddings.router import router as embeddings
    from service.evidence.router import router as evidence
    from service.health.router import router as health
    from service.jobs.router import router as jobs
    from service.library.router import router as library
    from service.recommendations.router import oneshot_router
    from service.recommendations.router import router as recommendations
    from service.tasks.router import router as tasks
    from service.transfers.router import router as transfers

    routers = (health, auth, tasks, embeddings, evidence, recommendations, library, jobs, transfers)
    for router in (*routers, oneshot_router, batches, adapters):
        app.include_router(router)
