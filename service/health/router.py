from __future__ import annotations

import tempfile

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from service.auth import service as auth
from service.auth.exceptions import AdminRequired, NotAuthenticated
from service.context import AppContext
from service.dependencies import ContextDep, SessionDep
from service.errors import responses


def _metrics_access(request: Request, context: ContextDep, session: SessionDep) -> None:
    if context.settings.metrics_access == "open":
        return
    _, key = get_authorization_scheme_param(request.headers.get("authorization"))
    if not auth.authenticate(session, key or None).owner.is_admin:
        raise AdminRequired("/metrics needs an admin key (TASKREC_METRICS_ACCESS=admin)")


router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (on the event loop: no request thread needed, however busy)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(context: ContextDep) -> JSONResponse:
    """Ready when the database, the job queue (broker or worker threads) and the index store are."""
    checks = {
        "database": _check(lambda: _database(context)),
        "queue": _check(lambda: context.dispatcher.ping(), context.dispatcher.describe()),
        "index": _check(lambda: _writable(context)),
    }
    ready = all(v.startswith("ok") for v in checks.values())
    body = Health(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(_metrics_access)],
    responses=responses(NotAuthenticated, AdminRequired),
)
def metrics(request: Request) -> Response:
    """Prometheus exposition: request latency, jobs by state, queue depth, job durations
    (``TASKREC_METRICS_ACCESS``: an admin key by default, or open)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _check(probe, detail: str = "") -> str:
    try:
        ok = probe()
    except Exception as exc:
        return f"failed: {type(exc).__name__}"
    suffix = f" ({detail})" if detail else ""
    return f"ok{suffix}" if ok is not False else f"failed{suffix}"


def _database(context: AppContext) -> bool:
    with context.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return True


def _writable(context: AppContext) -> bool:
    root = context.settings.index_dir
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=root):
        return True
