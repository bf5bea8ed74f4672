from __future__ import annotations

from fastapi import APIRouter, status

from service.auth import service
from service.auth.dependencies import AdminOwner, CurrentOwner
from service.auth.exceptions import AdminRequired, AmbiguousKey, KeyNotFound, NotAuthenticated
from service.auth.schemas import KeyCreate, KeyIssued, KeyRead, OwnerRead
from service.dependencies import SessionDep
from service.errors import responses

router = APIRouter(prefix="/v1", tags=["auth"], responses=responses(NotAuthenticated))


@router.get("/me", response_model=OwnerRead)
def read_me(owner: CurrentOwner) -> OwnerRead:
    """The owner of the key making the request."""
    return OwnerRead.model_validate(owner)


@router.get("/keys", response_model=list[KeyRead], responses=responses(AdminRequired))
def list_keys(_admin: AdminOwner, session: SessionDep) -> list[KeyRead]:
    """Every API key (prefixes only; keys are never shown again after creation)."""
    return [KeyRead.model_validate(k) for k in service.list_keys(session)]


@router.post(
    "/keys",
    response_model=KeyIssued,
    status_code=status.HTTP_201_CREATED,
    responses=responses(AdminRequired),
)
def create_key(body: KeyCreate, _admin: AdminOwner, session: SessionDep) -> KeyIssued:
    """A new key for an owner (created if new); the response is the only place the key appears."""
    issued = service.issue_key(session, body.owner, admin=body.admin, label=body.label)
    session.refresh(issued.key)
    read = KeyRead.model_validate(issued.key)
    return KeyIssued(**read.model_dump(), key=issued.secret)


@router.delete(
    "/keys/{ref}",
    response_model=KeyRead,
    responses=responses(AdminRequired, KeyNotFound, AmbiguousKey),
)
def revoke_key(ref: str, _admin: AdminOwner, session: SessionDep) -> KeyRead:
    """Revoke a key by id or prefix; requests with it then answer 401."""
    return KeyRead.model_validate(service.revoke_key(session, ref))
