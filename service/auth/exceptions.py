from __future__ import annotations

from service.errors import Forbidden, NotFound, ServiceError


class NotAuthenticated(ServiceError):
    status_code = 401
    code = "not_authenticated"
    description = "Missing, unknown or revoked API key"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class AdminRequired(Forbidden):
    code = "admin_required"
    description = "Only admin keys may do this"


class RateLimited(ServiceError):
    status_code = 429
    code = "rate_limited"
    description = "Too many requests for this key"

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(
            f"rate limit exceeded for this API key; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


class KeyNotFound(NotFound):
    code = "key_not_found"
    description = "No such API key"


class AmbiguousKey(ServiceError):
    code = "ambiguous_key"
    description = "The key reference matches several keys"
