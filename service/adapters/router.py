from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from service.adapters import service
from service.adapters.exceptions import (
    AdapterBackfillInvalid,
    AdapterBusy,
    AdapterNotFound,
    NoAdaptersToTrain,
)
from service.adapters.schemas import AdapterBackfill, AdapterList
from service.auth.dependencies import AdminOwner
from service.auth.exceptions import AdminRequired, NotAuthenticated
from service.dependencies import ContextDep, SessionDep, SettingsDep
from service.errors import responses
from service.jobs.schemas import JobRead

router = APIRouter(prefix="/v1/adapters", tags=["adapters"], responses=responses(NotAuthenticated))

AdapterKey = Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$", description="the adapter's key")]


@router.get("", response_model=AdapterList, responses=responses(AdminRequired))
def list_adapters(
    _admin: AdminOwner,
    settings: SettingsDep,
    task: Annotated[str | None, Query(max_length=200, description="one task's only")] = None,
) -> AdapterList:
    """The library's trained source adapters, newest first (admins: they name the tasks they
    were trained on, owners' too): what adapter and fusion transfers reuse instead of training
    a source stage."""
    items = service.list_adapters(settings, task)
    return AdapterList(items=items, total=len(items))


@router.delete(
    "/{key}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(AdminRequired, AdapterNotFound, AdapterBusy),
)
def delete_adapter(key: AdapterKey, _admin: AdminOwner, settings: SettingsDep) -> Response:
    """Delete one adapter (admins); the next transfer that needs it trains it again."""
    service.delete_adapter(settings, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/backfill",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(AdminRequired, AdapterBackfillInvalid, NoAdaptersToTrain),
)
def backfill_adapters(
    admin: AdminOwner,
    session: SessionDep,
    context: ContextDep,
    body: AdapterBackfill | None = None,
) -> JobRead:
    """Train library tasks' adapters ahead of use (admins): one backfill job, below owners'
    jobs, training each task's adapter for the service's model as a default adapter transfer's
    source stage would (so that transfer finds it stored); adapters already stored are skipped.
    ``task_ids``: default every library task with labels and validation rows."""
    return service.backfill(session, context, admin, body.task_ids if body else None)
