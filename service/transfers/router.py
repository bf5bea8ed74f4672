from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from service.auth.dependencies import AdminOwner, CurrentOwner
from service.auth.exceptions import AdminRequired, NotAuthenticated
from service.dependencies import ContextDep, Offset, ResourceId, SessionDep
from service.errors import responses
from service.recommendations.exceptions import EmbeddingsNotReady
from service.tasks.exceptions import TaskNotFound
from service.transfers import service
from service.transfers.exceptions import NoSources, TransferInvalid, TransferNotFound
from service.transfers.schemas import TransferCreate, TransferPage, TransferRead, TransferShare

router = APIRouter(
    prefix="/v1/transfers", tags=["transfers"], responses=responses(NotAuthenticated)
)


@router.post(
    "",
    response_model=TransferRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(TaskNotFound, TransferInvalid, EmbeddingsNotReady, NoSources),
)
def start_transfer(
    body: TransferCreate, owner: CurrentOwner, session: SessionDep, context: ContextDep
) -> TransferRead:
    """Start a transfer run (a fine-tuning job); follow it with ``job_id`` or by polling."""
    run = service.start(session, context, owner, body)
    return service.read_models(session, [run])[0]


@router.get("", response_model=TransferPage)
def list_transfers(
    owner: CurrentOwner,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> TransferPage:
    """Your transfer runs, newest first."""
    items, total = service.page(session, owner, limit, offset)
    return TransferPage(
        items=service.read_models(session, items), total=total, limit=limit, offset=offset
    )


@router.get("/{run_id}", response_model=TransferRead, responses=responses(TransferNotFound))
def read_transfer(run_id: ResourceId, owner: CurrentOwner, session: SessionDep) -> TransferRead:
    """A run's state and, once done, per-stage metrics, baseline and gain (mean ± std)."""
    return service.read_models(session, [service.visible(session, owner, run_id)])[0]


@router.put(
    "/{run_id}/shared",
    response_model=TransferRead,
    responses=responses(AdminRequired, TransferNotFound),
)
def share_transfer(
    run_id: ResourceId,
    admin: AdminOwner,
    session: SessionDep,
    body: TransferShare | None = None,
) -> TransferRead:
    """Share a finished run as evidence for every owner's recommendations, or (``{"shared":
    false}``) make it its owner's alone again (admins)."""
    run = service.share(session, admin, run_id, (body or TransferShare()).shared)
    return service.read_models(session, [run])[0]
