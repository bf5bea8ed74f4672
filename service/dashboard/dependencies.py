"""``Viewer`` (the signed-in owner), the CSRF check and the page renderer, written once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from service.auth import service as auth
from service.auth.dependencies import admin_owner
from service.auth.exceptions import RateLimited
from service.dashboard.exceptions import CsrfFailed, Disabled, LoginRequired
from service.dashboard.session import (
    COOKIE,
    DashboardDisabled,
    LoginThrottle,
    SessionData,
    Sessions,
    signing_secret,
)
from service.dependencies import ContextDep, SessionDep
from service.models import ApiKey, Owner
from service.recommendations.cache import ResultCache
from service.settings import Settings

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
# Everything from this server, nothing from anywhere else (no CDN, no beacon). Plotly's WebGL
# scatter (regl, the map beyond charts.WEBGL_FROM tasks) compiles its draw calls with
# Function(), hence 'unsafe-eval' (without it the map fails); charts and bars set inline styles.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


@dataclass
class DashboardState:
    """What the dashboard keeps per API process (``app.state.dashboard``)."""

    settings: Settings
    throttle: LoginThrottle
    templates: Jinja2Templates
    # Task maps per (encoder, library version, method) and length histograms per task data:
    # computed once, kept while their inputs are unchanged
    maps: ResultCache[Any] = field(default_factory=lambda: ResultCache(16, float("inf")))
    lengths: ResultCache[Any] = field(default_factory=lambda: ResultCache(256, float("inf")))
    map_lock: threading.Lock = field(default_factory=threading.Lock)
    _sessions: Sessions | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sessions(self) -> Sessions:
        """The signer, made on first use (a generated development secret is written then);
        503 outside development without a configured secret."""
        with self._lock:
            if self._sessions is None:
                try:
                    secret = signing_secret(self.settings)
                except DashboardDisabled as error:
                    raise Disabled(str(error)) from None
                self._sessions = Sessions(secret, self.settings.dashboard_session_ttl_s)
            return self._sessions


def dashboard_state(request: Request) -> DashboardState:
    return request.app.state.dashboard


StateDep = Annotated[DashboardState, Depends(dashboard_state)]


def sessions_of(state: DashboardState) -> Sessions:
    return state.sessions()


@dataclass(frozen=True)
class Viewer:
    """The signed-in owner, the key they signed in with, and their session's CSRF token."""

    owner: Owner
    key: ApiKey
    session: SessionData
    csrf: str


def current_viewer(
    request: Request, context: ContextDep, session: SessionDep, state: StateDep
) -> Viewer:
    """The owner behind the session cookie: the key must still be active and the one the
    session was made for (a revoked key ends its sessions); the key's rate limit applies."""
    sessions = sessions_of(state)
    data = sessions.read(request.cookies.get(COOKIE))
    if data is None:
        raise LoginRequired("sign in with your API key")
    api_key = session.get(ApiKey, data.key_id)
    if not sessions.matches(data, api_key):
        raise LoginRequired("your session has ended (the key was revoked); sign in again")
    wait = request.app.state.limiter.acquire(api_key.id)
    if wait > 0:
        raise RateLimited(wait)
    auth.note_use(session, context.session_factory, api_key)
    request.state.key_prefix = api_key.prefix  # access logs: the prefix, never the key
    return Viewer(api_key.owner, api_key, data, sessions.csrf_token(data))


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def admin_viewer(viewer: ViewerDep) -> Viewer:
    """The viewer, if an admin: the API's own admin check."""
    admin_owner(viewer.owner)
    return viewer


AdminViewer = Annotated[Viewer, Depends(admin_viewer)]


def checked_form(viewer: ViewerDep, state: StateDep, csrf: Annotated[str, Form()] = "") -> Viewer:
    """The viewer of a POSTed form whose ``csrf`` field is this session's token."""
    if not sessions_of(state).csrf_valid(viewer.session, csrf):
        raise CsrfFailed("the form expired or did not come from this dashboard; reload the page")
    return viewer


FormViewer = Annotated[Viewer, Depends(checked_form)]


def admin_form(viewer: FormViewer) -> Viewer:
    """An admin's POSTed form with a valid CSRF token."""
    admin_owner(viewer.owner)
    return viewer


AdminFormViewer = Annotated[Viewer, Depends(admin_form)]


def checked_query(request: Request, viewer: ViewerDep, state: StateDep) -> Viewer:
    """The viewer of a multipart POST, whose token rides in the query string: the upload is
    streamed to staging by the tasks service, which accepts no extra form fields."""
    if not sessions_of(state).csrf_valid(viewer.session, request.query_params.get("csrf")):
        raise CsrfFailed("the form expired or did not come from this dashboard; reload the page")
    return viewer


QueryFormViewer = Annotated[Viewer, Depends(checked_query)]


def render(
    request: Request,
    state: DashboardState,
    template: str,
    viewer: Viewer | None = None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A page: ``template`` with the viewer (for the menu and CSRF) and ``values``."""
    context = {"viewer": viewer, "page": template.removesuffix(".html"), **values}
    response = state.templates.TemplateResponse(request, template, context, status_code=status_code)
    # Pages show an owner's data: never cached by a proxy or the back button after logout
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    return response
