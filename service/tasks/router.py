from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service.auth.dependencies import CurrentOwner
from service.auth.exceptions import NotAuthenticated, RateLimited
from service.dependencies import ContextDep, Offset, SessionDep, SettingsDep
from service.errors import responses
from service.jobs.schemas import JobRead
from service.models import Job
from service.tasks import service
from service.tasks.dependencies import OwnedTask, StagedTask, VisibleTask
from service.tasks.exceptions import (
    DatasetNotAllowed,
    LibraryTaskReadOnly,
    MalformedUpload,
    TaskInvalid,
    TaskNameTaken,
    TaskNotFound,
    UnsupportedMediaType,
    UploadTooLarge,
)
from service.tasks.schemas import (
    TaskHfCreate,
    TaskPage,
    TaskRead,
    TaskRowsCreate,
    TaskStatusName,
    TaskTypeName,
)

router = APIRouter(
    prefix="/v1/tasks", tags=["tasks"], responses=responses(NotAuthenticated, RateLimited)
)

TASK_TYPES = list(get_args(TaskTypeName))


def _inlined(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its nested models written in place (no ``$defs``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        return [resolve(v) for v in node] if isinstance(node, list) else node

    return resolve(schema)


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "type", "train"],
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string", "enum": TASK_TYPES},
                        "labels": {"type": "string", "description": "comma-separated"},
                        "metric": {"type": "string"},
                        "fields": {"type": "string", "description": "JSON: field -> column"},
                        "train": {"type": "string", "format": "binary"},
                        "validation": {"type": "string", "format": "binary"},
                    },
                }
            },
            "application/json": {
                "schema": {"anyOf": [_inlined(TaskRowsCreate), _inlined(TaskHfCreate)]}
            },
        },
    }
}


@router.post(
    "",
    response_model=TaskRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=UPLOAD_BODY,
    responses={
        202: {
            "model": JobRead,
            "description": "A Hub dataset: the `import` job that loads it and creates the task "
            "(then its `task_id`); a dataset it rejects fails the job and leaves no task",
        },
        **responses(
            TaskInvalid,
            UploadTooLarge,
            UnsupportedMediaType,
            MalformedUpload,
            TaskNameTaken,
            DatasetNotAllowed,
        ),
    },
)
def create_task(
    staged: StagedTask, owner: CurrentOwner, session: SessionDep, context: ContextDep
) -> TaskRead | JSONResponse:
    """Submit a task: multipart files, JSON rows, or a JSON Hugging Face dataset reference
    (`hf`). Accepted whole (201), or rejected with problems.

    Its embedding job starts once the task is stored; follow it through ``embedding.job_id``.
    A `save_to_disk` folder under a library root is loaded at once; a Hub dataset is loaded by a
    job (202 with the job; no network inside the request).
    """
    submitted = service.submit(session, context, owner, staged)
    if isinstance(submitted, Job):
        body = JobRead.of(submitted).model_dump(mode="json")
        return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED)
    return service.read_model(session, context.settings, submitted)


@router.get("", response_model=TaskPage)
def list_tasks(
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    type: TaskTypeName | None = None,
    status: TaskStatusName | None = None,
    library: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> TaskPage:
    """Your tasks and the library's, oldest first."""
    filters = {"type": type, "status": status, "library": library}
    items, total = service.page(session, owner, limit=limit, offset=offset, **filters)
    return TaskPage(
        items=service.read_models(session, settings, items), total=total, limit=limit, offset=offset
    )


@router.get("/{task_id}", response_model=TaskRead, responses=responses(TaskNotFound))
def read_task(task: VisibleTask, session: SessionDep, settings: SettingsDep) -> TaskRead:
    """Counts, label distribution, status and embedding status of one task."""
    return service.read_model(session, settings, task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(TaskNotFound, LibraryTaskReadOnly),
)
def delete_task(task: OwnedTask, session: SessionDep, context: ContextDep) -> Response:
    """Delete a task with its files and embeddings; its running jobs are cancelled."""
    service.delete_task(session, context, task)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
