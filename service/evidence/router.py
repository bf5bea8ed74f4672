from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request, Response, UploadFile, status

from service.auth.dependencies import AdminOwner, CurrentOwner
from service.auth.exceptions import AdminRequired, NotAuthenticated
from service.dependencies import ContextDep, Offset, SessionDep, SettingsDep
from service.errors import Problem, responses
from service.evidence import calibration, service
from service.evidence.exceptions import (
    EvidenceInvalid,
    EvidenceMismatch,
    EvidenceSetNameTaken,
    EvidenceSetNotFound,
    EvidenceTooLarge,
)
from service.evidence.schemas import (
    SET_NAME,
    CalibrationCreate,
    CalibrationRead,
    Coverage,
    EvidenceSetDetail,
    EvidenceSetRead,
    EvidenceSetUpdate,
)

router = APIRouter(prefix="/v1/evidence", tags=["evidence"], responses=responses(NotAuthenticated))

SetName = Annotated[str, Path(pattern=SET_NAME, description="the evidence set's name")]
READ_CHUNK = 1 << 20


@router.post(
    "",
    response_model=EvidenceSetRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(AdminRequired, EvidenceInvalid, EvidenceSetNameTaken, EvidenceTooLarge),
)
async def import_evidence(
    request: Request,
    admin: AdminOwner,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, Form(description="CSV or JSONL: source,target,seed,score[,...]")],
    name: Annotated[str, Form(pattern=SET_NAME, description="the new set's name")],
    transfer_model: Annotated[
        str,
        Form(
            min_length=1,
            max_length=300,
            description="the model that was fine-tuned, as a user loads it (roberta-base, ...)",
        ),
    ],
    protocol: Annotated[
        str | None, Form(description="JSON object: source/target rows, epochs, regime, ...")
    ] = None,
    default: Annotated[bool, Form(description="rank this model's requests with it")] = False,
    note: Annotated[str | None, Form(max_length=2000, description="where it came from")] = None,
) -> EvidenceSetRead:
    """Import a file of measured transfers as a named evidence set (admins). All or nothing:
    every bad row is a 422 problem with its line and field; the set ranks the next request."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.evidence_max_bytes + READ_CHUNK:
        raise EvidenceTooLarge(f"the request exceeds {settings.evidence_max_bytes:,} bytes")
    data = await _read_limited(file, settings.evidence_max_bytes)
    evidence_request = service.ImportRequest(
        name=name,
        transfer_model=transfer_model,
        protocol=_protocol(protocol),
        default=default,
        note=note,
    )
    created = service.import_set(
        session, settings, evidence_request, data, file.filename or "", created_by=admin
    )
    return service.read_model(created)


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await file.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise EvidenceTooLarge(f"the file exceeds the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _protocol(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        value = error
    if not isinstance(value, dict):
        problem = Problem(field="protocol", message="protocol must be a JSON object")
        raise EvidenceInvalid("protocol must be a JSON object", problems=[problem])
    return value


@router.post(
    "/calibrations",
    response_model=CalibrationRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(AdminRequired, EvidenceInvalid),
)
def start_calibration(
    body: CalibrationCreate, admin: AdminOwner, session: SessionDep, context: ContextDep
) -> CalibrationRead:
    """Measure library tasks as donors on a fixed probe set of targets for a transfer model
    (admins): a backfill job, below owners' jobs, resumable, its cost estimated first
    (``dry_run`` estimates only). Its evidence set grows after each source."""
    return calibration.start(session, context, admin, body)


@router.get(
    "/coverage",
    response_model=Coverage,
    responses=responses(EvidenceSetNotFound, EvidenceMismatch),
)
def read_coverage(
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    transfer_model: Annotated[str | None, Query(max_length=300)] = None,
    evidence_set: Annotated[
        list[str],
        Query(description="sets to count (default: the transfer model's default sets)"),
    ] = [],  # noqa: B006 (FastAPI reads the default)
) -> Coverage:
    """How many library tasks have a donor record in the transfer model's default sets, or in
    the named sets (of that model and one protocol, as a recommendation takes them)."""
    model = transfer_model or settings.default_transfer_model
    return calibration.coverage(session, model, evidence_set)


@router.get("", response_model=list[EvidenceSetRead])
def list_evidence(owner: CurrentOwner, session: SessionDep) -> list[EvidenceSetRead]:
    """Every evidence set: transfer model, protocol, origin, whether it is a default, counts."""
    from service.evidence import repository

    return [service.read_model(s) for s in repository.all_sets(session)]


@router.get("/{name}", response_model=EvidenceSetDetail, responses=responses(EvidenceSetNotFound))
def read_evidence(
    name: SetName,
    owner: CurrentOwner,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Offset = 0,
) -> EvidenceSetDetail:
    """A set's summary and a page of its rows."""
    return service.detail(session, name, limit, offset)


@router.patch(
    "/{name}",
    response_model=EvidenceSetRead,
    responses=responses(AdminRequired, EvidenceSetNotFound),
)
def update_evidence(
    name: SetName, body: EvidenceSetUpdate, _admin: AdminOwner, session: SessionDep
) -> EvidenceSetRead:
    """Make a set a default of its transfer model, or not (admins)."""
    found = service.make_default(session, service.get(session, name), body.default)
    return service.read_model(found)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=responses(AdminRequired, EvidenceSetNotFound),
)
def delete_evidence(name: SetName, _admin: AdminOwner, session: SessionDep) -> Response:
    """Delete a set and its rows (admins)."""
    service.delete(session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
