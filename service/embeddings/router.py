from __future__ import annotations

from fastapi import APIRouter, status

from service.auth.dependencies import CurrentOwner
from service.auth.exceptions import NotAuthenticated
from service.dependencies import ContextDep, SessionDep
from service.embeddings import service
from service.embeddings.schemas import EmbeddingRead, EmbedRequest
from service.errors import responses
from service.jobs.schemas import JobRead
from service.tasks.dependencies import OwnedTask, VisibleTask
from service.tasks.exceptions import LibraryTaskReadOnly, TaskNotFound

router = APIRouter(prefix="/v1/tasks", tags=["embeddings"], responses=responses(NotAuthenticated))


@router.get(
    "/{task_id}/embeddings", response_model=list[EmbeddingRead], responses=responses(TaskNotFound)
)
def list_embeddings(task: VisibleTask, session: SessionDep) -> list[EmbeddingRead]:
    """The task's stored embeddings per encoder and method (components and dimensions)."""
    return service.list_for_task(session, task)


@router.post(
    "/{task_id}/embeddings",
    response_model=JobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(TaskNotFound, LibraryTaskReadOnly),
)
def recompute_embeddings(
    body: EmbedRequest,
    task: OwnedTask,
    owner: CurrentOwner,
    session: SessionDep,
    context: ContextDep,
) -> JobRead:
    """Recompute the task's embeddings (another model, more examples): returns the job."""
    job = service.queue_embedding(session, context, task, owner.id, body)
    return JobRead.of(job)
