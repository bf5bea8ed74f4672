"""Adding the dashboard to the API app: state, static files, pages, HTML error pages."""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from service.dashboard import errors
from service.dashboard.dependencies import STATIC, TEMPLATES, DashboardState
from service.dashboard.session import LoginThrottle
from service.settings import Settings


def mount_dashboard(app: FastAPI, settings: Settings) -> None:
    """Serve the dashboard under ``/dashboard``; call after the API's routers and handlers."""
    from service.dashboard.router import router

    app.state.dashboard = DashboardState(
        settings=settings,
        throttle=LoginThrottle(
            settings.dashboard_login_attempts, settings.dashboard_login_window_s
        ),
        templates=templates(),
    )
    # Before the router: its catch-all answers every other /dashboard address with a 404 page
    app.mount(f"{errors.PREFIX}/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.include_router(router)
    errors.install(app)


def templates() -> Jinja2Templates:
    """The page templates (autoescaped) with the formatting filters they use."""
    found = Jinja2Templates(directory=TEMPLATES)
    found.env.filters.update(duration=duration, number=number, when=when)
    return found


def duration(seconds: float | None) -> str:
    """``75.2`` -> ``1 min 15 s``; empty for None."""
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def number(value: float | None, digits: int = 2) -> str:
    """A metric for a table cell: fixed digits, a dash for a missing value."""
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""
