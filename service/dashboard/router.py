"""The dashboard's pages. Handlers stay thin: the domain services decide and query."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from service.context import AppContext
from service.dashboard import map as task_map
from service.dashboard import views
from service.dashboard.assets import plotly_js_path
from service.dashboard.dependencies import (
    AdminFormViewer,
    AdminViewer,
    FormViewer,
    QueryFormViewer,
    StateDep,
    Viewer,
    ViewerDep,
    render,
    sessions_of,
)
from service.dashboard.errors import PREFIX
from service.dashboard.exceptions import PageNotFound
from service.dashboard.quality import SCOPES, quality
from service.dashboard.session import COOKIE, sign_in
from service.db import rollback, unit_of_work
from service.dependencies import MAX_DB_INT, ContextDep, ResourceId, SessionDep, SettingsDep
from service.errors import ServiceError
from service.events import event_stream
from service.evidence.calibration import coverage, coverage_by_protocol
from service.jobs import service as jobs
from service.library import service as library
from service.models import ApiKey, Job
from service.tasks import service as tasks
from service.tasks.router import TASK_TYPES
from service.tasks.uploads import StagedUpload, stage_request
from service.transfers import service as transfers
from service.transfers.schemas import Strategy, TransferCreate
from workers.strategies import STRATEGIES

router = APIRouter(prefix=PREFIX, include_in_schema=False)


LOGIN_COOKIE = "taskrec_login"  # double-submit token of the login form (no session yet)
Page = Annotated[int, Query(ge=1, le=100_000)]


# --- signing in and out ----------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a dashboard path: never another site (``//host``) after login."""
    if target and target.startswith(PREFIX) and not target.startswith("//"):
        return target
    return f"{PREFIX}/tasks"


@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/tasks", status_code=303)


@router.get("/login")
def login_form(request: Request, state: StateDep, next: str | None = None) -> Response:
    """The sign-in form: one field, an API key."""
    return _login_page(request, state, _safe_next(next))


def _login_page(
    request: Request, state: StateDep, target: str, error: ServiceError | None = None
) -> Response:
    sessions_of(state)  # 503 page when the dashboard has no secret
    token = secrets.token_urlsafe(16)
    status = error.status_code if error else 200
    response = render(
        request, state, "login.html", next=target, error=error, token=token, status_code=status
    )
    response.headers.update((error.headers or {}) if error else {})
    _set_cookie(request, response, LOGIN_COOKIE, token, 3600)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int):
    """A dashboard cookie: never sent to /v1, never read by scripts or sent cross-site."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.post("/login")
def login(
    request: Request,
    state: StateDep,
    session: SessionDep,
    key: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
    token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the key (throttled per client address); on success a signed session cookie."""
    sessions = sessions_of(state)
    client = request.client.host if request.client else "unknown"
    expected = request.cookies.get(LOGIN_COOKIE, "")
    try:
        api_key = sign_in(session, state.throttle, client, key, token, expected)
    except ServiceError as error:
        return _login_page(request, state, _safe_next(next), error)
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(request, response, COOKIE, sessions.issue(api_key), sessions.ttl_s)
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
def logout(_viewer: FormViewer) -> RedirectResponse:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# --- tasks -----------------------------------------------------------------------------------


@router.get("/tasks")
def task_list(
    request: Request,
    viewer: ViewerDep,
    state: StateDep,
    session: SessionDep,
    settings: SettingsDep,
    page: Page = 1,
    show: Literal["all", "mine", "library"] = "all",
) -> Response:
    """Your tasks and the library's, with type, size and status."""
    library_filter = {"all": None, "mine": False, "library": True}[show]
    items, pager = views.task_page(session, settings, viewer.owner, page, library_filter)
    return render(request, state, "tasks.html", viewer, tasks=items, pager=pager, show=show)


@router.get("/tasks/{task_id}")
def task_detail(
    request: Request,
    task_id: ResourceId,
    viewer: ViewerDep,
    state: StateDep,
    session: SessionDep,
    context: ContextDep,
) -> Response:
    """A task's statistics, embedding status and recommendations (404 if not visible)."""
    task = tasks.visible(session, viewer.owner, task_id)
    read = tasks.read_model(session, context.settings, task)
    ranking = views.ranking(session, context, task, viewer.owner)
    return render(
        request,
        state,
        "task.html",
        viewer,
        task=read,
        labels_chart=views.label_chart(read),
        lengths_chart=views.length_chart(state, session, context.settings, task),
        ranking=ranking,
        strategies=list(STRATEGIES.values()),
    )


@router.post("/tasks/{task_id}/transfer")
def start_transfer(
    task_id: ResourceId,
    viewer: FormViewer,
    session: SessionDep,
    context: ContextDep,
    k: Annotated[int, Form(ge=1, le=10)] = 1,
    seeds: Annotated[int, Form(ge=1, le=10)] = 3,
    strategy: Annotated[Strategy, Form()] = "sequential",
) -> RedirectResponse:
    """A transfer from the top-``k`` recommended sources (the API's ``sources: auto``) with
    any registered strategy."""
    body = TransferCreate(
        target_task_id=task_id, sources="auto", k=k, seeds=list(range(seeds)), strategy=strategy
    )
    transfers.start(session, context, viewer.owner, body)
    return RedirectResponse(f"{PREFIX}/jobs", status_code=303)


# --- submitting ------------------------------------------------------------------------------


@router.get("/submit")
def submit_form(request: Request, viewer: ViewerDep, state: StateDep) -> Response:
    return render(request, state, "submit.html", viewer, types=TASK_TYPES, fields={})


async def staged_form(
    request: Request, settings: SettingsDep, _viewer: QueryFormViewer
) -> AsyncIterator[StagedUpload | ServiceError]:
    """The form's fields and files staged by the tasks service (after the CSRF check), or why
    they could not be (too large, a file of another format): the page says so. Always
    discarded afterwards, so nothing of a rejected upload stays."""
    try:
        staged = await stage_request(
            request, settings.staging_dir, settings.max_upload_bytes, settings.max_upload_rows
        )
    except ServiceError as error:
        yield error
        return
    try:
        yield staged
    finally:
        staged.discard()


@router.post("/submit")
def submit(
    request: Request,
    staged: Annotated[StagedUpload | ServiceError, Depends(staged_form, scope="function")],
    viewer: QueryFormViewer,
    state: StateDep,
    session: SessionDep,
    context: ContextDep,
) -> Response:
    """Submit through ``POST /v1/tasks``'s service; its problems are shown row by row."""
    try:
        if isinstance(staged, ServiceError):
            raise staged
        created = tasks.submit(session, context, viewer.owner, staged)
    except ServiceError as error:
        rollback(session)  # nothing of a rejected upload is kept
        fields = staged.fields if isinstance(staged, StagedUpload) else {}
        return render(
            request,
            state,
            "submit.html",
            viewer,
            types=TASK_TYPES,
            fields=fields,
            error=error,
            status_code=error.status_code,
        )
    if isinstance(created, Job):  # a Hub dataset: its import job
        return RedirectResponse(f"{PREFIX}/jobs", status_code=303)
    return RedirectResponse(f"{PREFIX}/tasks/{created.id}", status_code=303)


# --- jobs ------------------------------------------------------------------------------------


@router.get("/jobs")
def job_list(
    request: Request,
    viewer: ViewerDep,
    state: StateDep,
    session: SessionDep,
    settings: SettingsDep,
    page: Page = 1,
) -> Response:
    """Your jobs, live: one event stream for the whole page."""
    items, pager = views.job_page(session, settings, viewer.owner, page)
    names = views.names_of(session, viewer.owner, items)
    return render(request, state, "jobs.html", viewer, jobs=items, names=names, pager=pager)


class _Rows(BaseModel):
    """One event of the jobs stream: the page's rows, rendered (never final)."""

    id: int = 0
    state: str = "open"
    html: str


@router.get("/jobs/events")
def job_events(viewer: ViewerDep, state: StateDep, context: ContextDep, page: Page = 1) -> Response:
    """Server-Sent Events for every job on the page, on the session cookie (an EventSource
    cannot send a key); the stream ends when the session's key is revoked."""
    read = partial(_job_rows, state, context, viewer, page)
    return event_stream(read, context.settings.sse_poll_interval_s)


def _job_rows(state, context: AppContext, viewer: Viewer, page: int) -> _Rows | None:
    with unit_of_work(context.session_factory) as session:
        api_key = session.get(ApiKey, viewer.key.id)
        if not sessions_of(state).matches(viewer.session, api_key):
            return None
        owner = api_key.owner
        items, _ = views.job_page(session, context.settings, owner, page)
        names = views.names_of(session, owner, items)
    template = state.templates.get_template("_job_rows.html")
    return _Rows(html=template.render(jobs=items, names=names, viewer=viewer))


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: ResourceId, viewer: FormViewer, session: SessionDep) -> RedirectResponse:
    jobs.cancel(session, jobs.visible(session, viewer.owner, job_id))
    return RedirectResponse(f"{PREFIX}/jobs", status_code=303)


# --- transfers, map, quality, library --------------------------------------------------------


@router.get("/transfers")
def transfer_list(
    request: Request,
    viewer: ViewerDep,
    state: StateDep,
    session: SessionDep,
    evidence_set: Annotated[str | None, Query(alias="set", max_length=100)] = None,
    page: Page = 1,
) -> Response:
    """Your runs per target against the baseline (paged); an evidence set's gains as a heat
    map."""
    targets, pager = views.transfers_by_target(session, viewer.owner, page)
    evidence = views.evidence_view(session, evidence_set)
    extra = f"&set={quote(evidence_set)}" if evidence_set else ""
    return render(
        request,
        state,
        "transfers.html",
        viewer,
        targets=targets,
        evidence=evidence,
        pager=pager,
        extra=extra,
    )


@router.get("/map")
def map_page(
    request: Request,
    viewer: ViewerDep,
    state: StateDep,
    session: SessionDep,
    settings: SettingsDep,
    method: Literal[task_map.METHODS] = "taskemb",  # type: ignore[valid-type]
) -> Response:
    """Library and your tasks in 2-D by the method chosen on the page."""
    found = task_map.projection(state, session, settings, method)
    figure = None
    if found is not None:
        from service.dashboard.charts import task_map as figure_of

        figure = figure_of(task_map.points(session, viewer.owner, found, method), method)
    return render(
        request,
        state,
        "map.html",
        viewer,
        method=method,
        methods=task_map.METHODS,
        figure=figure,
        projection=found,
    )


@router.get("/map/neighbours")
def map_neighbours(
    viewer: ViewerDep,
    state: StateDep,
    session: SessionDep,
    settings: SettingsDep,
    task_id: Annotated[int, Query(ge=1, le=MAX_DB_INT)],
    method: Literal[task_map.METHODS] = "taskemb",  # type: ignore[valid-type]
) -> JSONResponse:
    """The selected task's nearest library tasks in the method's space (for the map's lines)."""
    task = tasks.visible(session, viewer.owner, task_id)
    found = task_map.projection(state, session, settings, method)
    near = task_map.neighbours(session, found, task, method) if found else []
    return JSONResponse({"task_id": task.id, "name": task.name, "neighbours": near})


@router.get("/quality")
def quality_page(
    request: Request, viewer: ViewerDep, state: StateDep, session: SessionDep, settings: SettingsDep
) -> Response:
    """The saved evaluation of the ranker file, per method and scope, with the goals."""
    found = quality(session, settings)
    return render(
        request,
        state,
        "quality.html",
        viewer,
        quality=found,
        scopes=SCOPES,
        ranker_file=settings.ranker_file,
    )


@router.get("/library")
def library_page(
    request: Request,
    viewer: AdminViewer,
    state: StateDep,
    session: SessionDep,
    settings: SettingsDep,
    page: Page = 1,
) -> Response:
    """The library (admins): tasks, embedding coverage, donor-record coverage."""
    items, pager = views.task_page(session, settings, viewer.owner, page, True)
    donors = coverage(session, settings.default_transfer_model)
    by_protocol = coverage_by_protocol(session, settings.default_transfer_model)
    ready = views.library_ready(session, settings)
    return render(
        request,
        state,
        "library.html",
        viewer,
        tasks=items,
        pager=pager,
        donors=donors,
        by_protocol=by_protocol,
        ready=ready,
    )


@router.post("/library/{task_id}/{action}")
def change_library(
    task_id: ResourceId,
    action: Literal["promote", "remove"],
    viewer: AdminFormViewer,
    session: SessionDep,
    context: ContextDep,
) -> RedirectResponse:
    """Promote a submitted task into the library, or take one out (admins): the library
    service ``PUT`` and ``DELETE /v1/library/{id}`` call."""
    task = tasks.visible(session, viewer.owner, task_id)
    if action == "promote":
        library.promote(session, context, task, viewer.owner.id)
        return RedirectResponse(f"{PREFIX}/tasks/{task_id}", status_code=303)
    library.remove(session, context, task)
    return RedirectResponse(f"{PREFIX}/library", status_code=303)


# --- assets ----------------------------------------------------------------------------------


@router.get("/assets/plotly.min.js")
def plotly_js() -> FileResponse:
    """Plotly's JavaScript from the installed ``plotly`` package: never a CDN."""
    return FileResponse(
        plotly_js_path(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/{path:path}")
def not_found(path: str) -> Response:
    """Any other dashboard address: the 404 page (rendered by the error handler)."""
    raise PageNotFound(f"no dashboard page at /dashboard/{path}")
