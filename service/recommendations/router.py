from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from service.auth.dependencies import CurrentOwner
from service.auth.exceptions import NotAuthenticated
from service.dependencies import ContextDep, SessionDep
from service.errors import responses
from service.evidence.exceptions import EvidenceMismatch, EvidenceSetNotFound
from service.recommendations import service
from service.recommendations.exceptions import EmbeddingsNotReady
from service.recommendations.methods import method_evidence, resolve_method
from service.recommendations.oneshot import OneShot, submit_and_recommend
from service.recommendations.schemas import Methods, RankMethod, Recommendations
from service.tasks.dependencies import StagedTask, VisibleTask
from service.tasks.exceptions import (
    DatasetNotAllowed,
    MalformedUpload,
    TaskInvalid,
    TaskNameTaken,
    TaskNotFound,
    UnsupportedMediaType,
    UploadTooLarge,
)
from service.tasks.router import UPLOAD_BODY
from service.tasks.schemas import TaskTypeName

router = APIRouter(
    prefix="/v1/tasks", tags=["recommendations"], responses=responses(NotAuthenticated)
)


@router.get(
    "/{task_id}/recommendations",
    response_model=Recommendations,
    responses=responses(TaskNotFound, EmbeddingsNotReady, EvidenceSetNotFound, EvidenceMismatch),
)
def recommendations(
    task: VisibleTask,
    owner: CurrentOwner,
    session: SessionDep,
    context: ContextDep,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    method: RankMethod | None = None,
    type: TaskTypeName | None = None,
    model: Annotated[str | None, Query(description="the embedding encoder")] = None,
    transfer_model: Annotated[
        str | None,
        Query(
            max_length=300,
            description="the model you will fine-tune (default: the service's); `learned` "
            "ranks with its measured transfers",
        ),
    ] = None,
    evidence_set: Annotated[
        list[str],
        Query(description="evidence sets to rank with (default: the transfer model's)"),
    ] = [],  # noqa: B006 (FastAPI reads the default)
) -> Response:
    """The nearest library tasks, best first, with per-component evidence (409 until embedded).

    ``learned`` (and the default, where it is the best method) ranks with the measured transfers
    of ``transfer_model``; the answer's ``evidence`` names the sets and runs it used, or why it
    ranked by embeddings alone."""
    chosen = method or resolve_method(context.settings, type)
    result = service.recommend(
        session,
        context,
        task,
        k=k,
        method=chosen,
        task_type=type,
        model=model,
        owner_id=owner.id,
        transfer_model=transfer_model,
        evidence_sets=tuple(evidence_set),
    )
    # Serialised by pydantic directly: FastAPI's re-validation of the response model cost more
    # than a cached ranking itself (``bench/recommend.py``).
    return Response(result.model_dump_json(), media_type="application/json")


oneshot_router = APIRouter(
    prefix="/v1/recommendations", tags=["recommendations"], responses=responses(NotAuthenticated)
)


@oneshot_router.post(
    "",
    response_model=OneShot,
    openapi_extra=UPLOAD_BODY,
    responses={
        202: {"model": OneShot, "description": "Embeddings not ready within `wait`: poll the job"},
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
async def submit_and_rank(
    staged: StagedTask,
    owner: CurrentOwner,
    context: ContextDep,
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    method: RankMethod | None = None,
    type: TaskTypeName | None = None,
    wait: Annotated[float, Query(ge=0, le=300, description="seconds to wait for embeddings")] = 30,
) -> JSONResponse:
    """Submit a task as ``POST /v1/tasks`` does and get its recommendations in one call (200),
    or, if its embeddings take longer than ``wait`` seconds, the task and job to poll (202)."""
    chosen = method or resolve_method(context.settings, type)
    result = await submit_and_recommend(
        context, owner.id, staged, k=k, method=chosen, task_type=type, wait_s=wait
    )
    code = 200 if result.recommendations is not None or result.job.state == "failed" else 202
    return JSONResponse(result.model_dump(mode="json"), status_code=code)


@oneshot_router.get("/methods", response_model=Methods)
def methods(owner: CurrentOwner, context: ContextDep) -> Methods:
    """The ranking methods, the default one, and how each measured on held-out transfers
    (the evaluation saved with the ranker file by ``taskrec evaluate --save-ranker``)."""
    return method_evidence(context.settings)
