"""The dashboard's own errors; rendered as pages like every error under /dashboard."""

from __future__ import annotations

from service.errors import Forbidden, NotFound, ServiceError


class LoginRequired(ServiceError):
    """No valid session: pages redirect to the login form, the event stream answers 401."""

    status_code = 401
    code = "login_required"
    description = "Sign in to the dashboard"


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    description = "The form is stale or was not sent by the dashboard"


class Disabled(ServiceError):
    status_code = 503
    code = "dashboard_disabled"
    description = "The dashboard has no signing secret"


class SignInThrottled(ServiceError):
    status_code = 429
    code = "sign_in_throttled"
    description = "Too many failed sign-ins from this address"

    def __init__(self, wait_s: float) -> None:
        seconds = int(wait_s) + 1
        super().__init__(
            f"too many failed sign-ins from your address; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


class SignInFormExpired(ServiceError):
    status_code = 403
    code = "sign_in_form_expired"
    description = "The sign-in form was not the one this browser was sent"


class PageNotFound(NotFound):
    code = "page_not_found"
    description = "No dashboard page at this address"
