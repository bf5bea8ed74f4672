from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from service.auth.dependencies import AdminOwner, CurrentOwner
from service.auth.exceptions import AdminRequired, NotAuthenticated
from service.dependencies import ContextDep, Offset, SessionDep, SettingsDep
from service.errors import responses
from service.library import service
from service.library.exceptions import FolderNotAllowed, LibraryNameTaken
from service.library.schemas import FolderRegister
from service.tasks import service as tasks
from service.tasks.dependencies import VisibleTask
from service.tasks.exceptions import TaskInvalid, TaskNameTaken, TaskNotFound
from service.tasks.schemas import TaskPage, TaskRead, TaskTypeName

router = APIRouter(prefix="/v1/library", tags=["library"], responses=responses(NotAuthenticated))


@router.get("", response_model=TaskPage)
def list_library(
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    type: TaskTypeName | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> TaskPage:
    """The library's tasks with their embedding status."""
    items, total = tasks.page(
        session, owner, type=type, status=None, library=True, limit=limit, offset=offset
    )
    return TaskPage(
        items=tasks.read_models(session, settings, items), total=total, limit=limit, offset=offset
    )


@router.put(
    "/{task_id}",
    response_model=TaskRead,
    responses=responses(AdminRequired, TaskNotFound, LibraryNameTaken),
)
def promote_task(
    task: VisibleTask, admin: AdminOwner, session: SessionDep, context: ContextDep
) -> TaskRead:
    """Promote a submitted task into the library (admins)."""
    service.promote(session, context, task, admin.id)
    return tasks.read_model(session, context.settings, task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(AdminRequired, TaskNotFound, TaskNameTaken),
)
def remove_task(
    task: VisibleTask, _admin: AdminOwner, session: SessionDep, context: ContextDep
) -> Response:
    """Remove a task from the library (admins); a registered folder task is deleted."""
    service.remove(session, context, task)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/folders",
    response_model=list[TaskRead],
    status_code=status.HTTP_201_CREATED,
    responses=responses(
        AdminRequired, FolderNotAllowed, TaskInvalid, LibraryNameTaken, TaskNameTaken
    ),
)
def register_folder(
    body: FolderRegister, admin: AdminOwner, session: SessionDep, context: ContextDep
) -> list[TaskRead]:
    """Register a task folder, or every task folder inside one, from a library root (admins)."""
    registered = service.register_folder(session, context, admin, body.path)
    return tasks.read_models(session, context.settings, registered)
