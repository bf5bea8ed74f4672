"""Dashboard errors as HTML pages; the API keeps its JSON error shape.

The app's JSON handlers stay the one place that decides an error's status, message and
problems: for a path under ``/dashboard`` their answer is rendered as a page instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from service.dashboard.dependencies import CSP, DashboardState
from service.dashboard.exceptions import LoginRequired

PREFIX = "/dashboard"
Handler = Callable[[Request, Exception], Awaitable[Response] | Response]

TITLES = {
    400: "Bad request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Not ready",
    413: "Too large",
    415: "Unsupported file",
    422: "Something to fix",
    429: "Slow down",
    500: "Something broke",
    503: "Unavailable",
}


def install(app: FastAPI) -> None:
    """Wrap each installed exception handler: dashboard paths get a page."""
    for exc_class, handler in list(app.exception_handlers.items()):
        app.exception_handlers[exc_class] = _dashboard_aware(handler)


def _dashboard_aware(api_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        response = api_handler(request, exc)
        if not isinstance(response, Response):
            response = await response
        if not _is_dashboard(request.url.path):
            return response
        if isinstance(exc, LoginRequired) and request.method == "GET" and _is_page(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{PREFIX}/login?next={quote(target)}", status_code=303)
        return error_page(request, response)

    return handle


def _is_dashboard(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _is_page(request: Request) -> bool:
    """A page a browser navigates to (not the event stream or a static asset)."""
    return not request.url.path.endswith("/events")


def error_page(request: Request, api_response: Response) -> Response:
    """The API's JSON error as a page with the same status and headers (Retry-After, ...)."""
    state: DashboardState | None = getattr(request.app.state, "dashboard", None)
    try:
        body = json.loads(bytes(api_response.body))
    except ValueError:
        body = {"message": "unexpected error"}
    status = api_response.status_code
    values = {
        "viewer": None,
        "page": "error",
        "status": status,
        "title": TITLES.get(status, "Error"),
        "message": body.get("message", ""),
        "problems": body.get("problems") or [],
    }
    headers = {
        k: v for k, v in api_response.headers.items() if k.lower() in ("retry-after", "allow")
    }
    headers["Cache-Control"] = "no-store"
    headers["Content-Security-Policy"] = CSP
    if state is None:
        return Response(values["message"], status_code=status, headers=headers)
    return state.templates.TemplateResponse(
        request, "error.html", values, status_code=status, headers=headers
    )
