"""``CurrentOwner`` and ``AdminOwner``: the key check and the admin check, written once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import service
from service.auth.exceptions import AdminRequired, RateLimited
from service.dependencies import ContextDep, SessionDep
from service.models import Owner

bearer = HTTPBearer(auto_error=False, description="An API key from `taskrec keys create`")


def current_owner(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Owner:
    """The owner of the request's API key (401 if missing or revoked, 429 over the rate)."""
    api_key = service.authenticate(session, credentials.credentials if credentials else None)
    wait = request.app.state.limiter.acquire(api_key.id)
    if wait > 0:
        raise RateLimited(wait)
    service.note_use(session, context.session_factory, api_key)
    request.state.key_prefix = api_key.prefix  # for access logs: the prefix, never the key
    return api_key.owner


CurrentOwner = Annotated[Owner, Depends(current_owner)]


def admin_owner(owner: CurrentOwner) -> Owner:
    if not owner.is_admin:
        raise AdminRequired("only an admin key may change the library or manage keys")
    return owner


AdminOwner = Annotated[Owner, Depends(admin_owner)]
