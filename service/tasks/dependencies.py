"""``VisibleTask`` (own, library, or admin) and ``OwnedTask`` (may change it): written once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from service.auth.dependencies import CurrentOwner
from service.dependencies import ResourceId, SessionDep, SettingsDep
from service.models import Task
from service.tasks import service
from service.tasks.uploads import StagedUpload, stage_request


def visible_task(task_id: ResourceId, owner: CurrentOwner, session: SessionDep) -> Task:
    """The task if the caller may see it; another owner's task answers 404, as a missing one."""
    return service.visible(session, owner, task_id)


VisibleTask = Annotated[Task, Depends(visible_task)]


def owned_task(task: VisibleTask, owner: CurrentOwner) -> Task:
    return service.owned(task, owner)


OwnedTask = Annotated[Task, Depends(owned_task)]


async def staged_upload(
    request: Request, settings: SettingsDep, _owner: CurrentOwner
) -> AsyncIterator[StagedUpload]:
    """The request body staged on disk (after authentication); always discarded afterwards."""
    staged = await stage_request(
        request, settings.staging_dir, settings.max_upload_bytes, settings.max_upload_rows
    )
    try:
        yield staged
    finally:
        staged.discard()


StagedTask = Annotated[StagedUpload, Depends(staged_upload, scope="function")]
