from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sse_starlette import EventSourceResponse

from service.auth.dependencies import CurrentOwner
from service.auth.exceptions import NotAuthenticated
from service.batches import service
from service.batches.exceptions import BatchInvalid, BatchNotFound
from service.batches.schemas import BatchCreate, BatchPage, BatchRead
from service.context import AppContext
from service.db import unit_of_work
from service.dependencies import ContextDep, Offset, ResourceId, SessionDep, SettingsDep
from service.errors import responses
from service.events import EVENT_STREAM, event_stream
from service.models import Batch
from service.recommendations.exceptions import EmbeddingsNotReady
from service.tasks.exceptions import TaskInvalid, TaskNameTaken, TaskNotFound, UploadTooLarge
from service.transfers.exceptions import NoSources, TransferInvalid


def body_within_limit(request: Request, settings: SettingsDep) -> None:
    """413 before reading a body whose declared size is over the upload limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise UploadTooLarge(f"body exceeds the limit of {settings.max_upload_bytes} bytes")


router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=responses(NotAuthenticated))


@router.post(
    "",
    response_model=BatchRead,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(body_within_limit)],
    responses=responses(
        BatchInvalid,
        TaskInvalid,
        TaskNameTaken,
        TaskNotFound,
        TransferInvalid,
        EmbeddingsNotReady,
        NoSources,
        UploadTooLarge,
    ),
)
def create_batch(
    body: BatchCreate, owner: CurrentOwner, session: SessionDep, context: ContextDep
) -> BatchRead:
    """Many tasks (JSON rows) or a source × target transfer sweep, as one batch of jobs."""
    batch = service.create(session, context, owner, body)
    return service.read_models(session, [batch])[0]


@router.get("", response_model=BatchPage)
def list_batches(
    owner: CurrentOwner,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> BatchPage:
    items, total = service.page(session, owner, limit, offset)
    return BatchPage(
        items=service.read_models(session, items), total=total, limit=limit, offset=offset
    )


@router.get("/{batch_id}", response_model=BatchRead, responses=responses(BatchNotFound))
def read_batch(batch_id: ResourceId, owner: CurrentOwner, session: SessionDep) -> BatchRead:
    """The batch's state over its child jobs, with each job."""
    return service.read_models(session, [service.visible(session, owner, batch_id)])[0]


@router.post("/{batch_id}/cancel", response_model=BatchRead, responses=responses(BatchNotFound))
def cancel_batch(batch_id: ResourceId, owner: CurrentOwner, session: SessionDep) -> BatchRead:
    """Cancel the batch's queued and running jobs."""
    batch = service.visible(session, owner, batch_id)
    service.cancel(session, batch)
    return service.read_models(session, [batch])[0]


@router.get(
    "/{batch_id}/events",
    responses={**responses(BatchNotFound), **EVENT_STREAM},
)
def batch_events(
    batch_id: ResourceId, owner: CurrentOwner, session: SessionDep, context: ContextDep
) -> EventSourceResponse:
    """Server-Sent Events: ``progress`` (the batch, as GET returns it) whenever it changes,
    then one ``end`` once every child job has finished."""
    batch = service.visible(session, owner, batch_id)
    return event_stream(partial(_read, context, batch.id), context.settings.sse_poll_interval_s)


def _read(context: AppContext, batch_id: int) -> BatchRead | None:
    with unit_of_work(context.session_factory) as session:
        batch = session.get(Batch, batch_id)
        return service.read_models(session, [batch])[0] if batch else None
