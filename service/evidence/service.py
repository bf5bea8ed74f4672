"""Importing, listing and deleting evidence sets, and choosing the ones a request ranks with.

An import is all or nothing: the file is parsed and checked whole (every unknown task, missing
field, non-finite number and duplicate named by its line) before one transaction writes the set
and its rows; the next request sees it (the learned fits are keyed by the sets' stamp).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.errors import Problem
from service.evidence import repository
from service.evidence.exceptions import (
    EvidenceInvalid,
    EvidenceMismatch,
    EvidenceSetNameTaken,
    EvidenceSetNotFound,
    EvidenceTooLarge,
)
from service.evidence.schemas import EvidenceRowRead, EvidenceSetDetail, EvidenceSetRead
from service.models import EvidenceOrigin, EvidenceSet, Owner
from service.settings import Settings
from workers.selection.evidence import (
    EvidenceFileError,
    parse_evidence,
    same_transfer_model,
    summarise,
    transfer_model_name,
)
from workers.selection.results import pinned_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportRequest:
    """What an admin (or the deployment) hands over with a file."""

    name: str
    transfer_model: str
    protocol: dict[str, Any]
    default: bool = False
    note: str | None = None
    origin: str = EvidenceOrigin.IMPORT


def import_set(
    session: Session,
    settings: Settings,
    request: ImportRequest,
    data: bytes,
    filename: str,
    created_by: Owner | None = None,
) -> EvidenceSet:
    """Check the whole file, then store the set and its rows (nothing if any row is bad)."""
    if len(data) > settings.evidence_max_bytes:
        raise EvidenceTooLarge(
            f"the file has {len(data):,} bytes; the limit is {settings.evidence_max_bytes:,}"
        )
    if repository.by_name(session, request.name) is not None:
        raise EvidenceSetNameTaken(
            f"an evidence set named {request.name!r} exists; delete it first to replace it"
        )
    model = _model_name(request.transfer_model)
    try:
        parsed = parse_evidence(
            data,
            filename,
            known_tasks=repository.library_names(session),
            max_rows=settings.evidence_max_rows,
        )
    except EvidenceFileError as error:
        problems = [
            Problem(file=filename or None, row=p.row, field=p.field, message=p.message)
            for p in error.problems
        ]
        too_many = any("import limit" in p.message for p in error.problems)
        if too_many:
            raise EvidenceTooLarge(str(error), problems=problems) from None
        raise EvidenceInvalid(str(error), problems=problems) from None
    summary = summarise(parsed.rows) | {"gain_basis": parsed.gain_basis, "metrics": parsed.metrics}
    evidence_set = EvidenceSet(
        name=request.name,
        transfer_model=model,
        protocol=request.protocol,
        origin=request.origin,
        note=request.note,
        is_default=False,
        file_hash=hashlib.sha256(data).hexdigest(),
        summary=summary,
        created_by=created_by.id if created_by else None,
    )
    session.add(evidence_set)
    session.flush()
    repository.add_rows(session, evidence_set.id, parsed.rows)
    first_of_model = not any(
        s.transfer_model == model and s.id != evidence_set.id for s in repository.all_sets(session)
    )
    shipped = request.origin == EvidenceOrigin.SWEEP and joins_defaults(session, evidence_set)
    if request.default or first_of_model or shipped:
        make_default(session, evidence_set, True)
    return evidence_set


def joins_defaults(session: Session, evidence_set: EvidenceSet) -> bool:
    """Whether the service's own evidence (a shipped sweep, a calibration) becomes a default of
    its model by itself: when the model has no default, or its defaults share its protocol."""
    defaults = [
        s
        for s in repository.all_sets(session)
        if s.is_default
        and s.id != evidence_set.id
        and s.transfer_model == evidence_set.transfer_model
    ]
    return all(_canonical(s.protocol) == _canonical(evidence_set.protocol) for s in defaults)


def _model_name(name: str) -> str:
    try:
        return transfer_model_name(name)
    except ValueError as error:
        problem = Problem(field="transfer_model", message=str(error))
        raise EvidenceInvalid(str(error), problems=[problem]) from None


def make_default(session: Session, evidence_set: EvidenceSet, default: bool) -> EvidenceSet:
    """Make a set a default of its transfer model, or not. Defaults are merged when a request
    names no set, so a new default's protocol wins: defaults of another protocol stop being
    defaults (never merged silently)."""
    if default:
        others = [
            s.id
            for s in repository.all_sets(session)
            if s.transfer_model == evidence_set.transfer_model
            and s.id != evidence_set.id
            and _canonical(s.protocol) != _canonical(evidence_set.protocol)
        ]
        repository.clear_defaults(session, others)
    evidence_set.is_default = default
    session.flush()
    return evidence_set


def get(session: Session, name: str) -> EvidenceSet:
    found = repository.by_name(session, name)
    if found is None:
        raise EvidenceSetNotFound(f"no evidence set named {name!r} (GET /v1/evidence lists them)")
    return found


def delete(session: Session, name: str) -> None:
    repository.delete_set(session, get(session, name))


def read_model(evidence_set: EvidenceSet) -> EvidenceSetRead:
    return EvidenceSetRead(
        name=evidence_set.name,
        transfer_model=evidence_set.transfer_model,
        protocol=evidence_set.protocol,
        origin=evidence_set.origin,
        note=evidence_set.note,
        default=evidence_set.is_default,
        summary=evidence_set.summary,
        created_at=evidence_set.created_at,
    )


def detail(session: Session, name: str, limit: int, offset: int) -> EvidenceSetDetail:
    """A set's summary and a page of its rows (ordered by target, source, seed)."""
    found = get(session, name)
    rows = [
        EvidenceRowRead(
            source=r.source,
            target=r.target,
            seed=r.seed,
            score=r.score,
            baseline=r.baseline,
            gain=r.gain,
            metric=r.metric,
        )
        for r in repository.page_rows(session, found.id, limit, offset)
    ]
    total = int(found.summary.get("rows", 0))
    return EvidenceSetDetail(
        **read_model(found).model_dump(), rows=rows, total=total, limit=limit, offset=offset
    )


# --- choosing the evidence of a request ------------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    """The sets a request ranks with, and why (``reason``) when there are none."""

    transfer_model: str
    sets: list[EvidenceSet]
    reason: str | None = None

    @property
    def protocol(self) -> dict[str, Any] | None:
        return self.sets[0].protocol if self.sets else None


def choose(session: Session, transfer_model: str, names: list[str]) -> Chosen:
    """The named sets (all of ``transfer_model``, all of one protocol), or its default sets."""
    model = _model_name(transfer_model)
    if names:
        sets = [get(session, name) for name in dict.fromkeys(names)]
        foreign = [s for s in sets if not same_transfer_model(model, s.transfer_model)]
        if foreign:
            named = ", ".join(f"{s.name} ({s.transfer_model})" for s in foreign)
            raise EvidenceMismatch(
                f"evidence set(s) {named} measured another model than {model!r}: ask with "
                "transfer_model= set to the model they measured"
            )
        protocols = {_canonical(s.protocol) for s in sets}
        if len(protocols) > 1:
            raise EvidenceMismatch(
                f"evidence sets {', '.join(s.name for s in sets)} differ in protocol "
                "(source/target rows, epochs, ...): sets of different protocols are never "
                "merged; ask for one protocol's sets"
            )
        return Chosen(model, sets)
    mine = [s for s in repository.all_sets(session) if same_transfer_model(model, s.transfer_model)]
    defaults = [s for s in mine if s.is_default]
    if not defaults:
        reason = f"no measured transfers of {model!r}"
        if mine:
            listed = ", ".join(s.name for s in mine)
            reason += f" among the default sets (it has {listed}: name one with evidence_set=)"
        return Chosen(model, [], reason)
    newest = max(defaults, key=lambda s: s.id)  # revisions may differ: keep one protocol
    kept = [s for s in defaults if _canonical(s.protocol) == _canonical(newest.protocol)]
    return Chosen(model, kept)


def protocol_groups(session: Session, transfer_model: str) -> list[list[EvidenceSet]]:
    """The transfer model's sets, one list per protocol (the sets a request may name together),
    the group holding its defaults first."""
    model = _model_name(transfer_model)
    groups: dict[str, list[EvidenceSet]] = {}
    for found in repository.all_sets(session):
        if same_transfer_model(model, found.transfer_model):
            groups.setdefault(_canonical(found.protocol), []).append(found)
    return sorted(groups.values(), key=lambda group: not any(s.is_default for s in group))


def rows(session: Session, chosen: Chosen) -> list:
    """The chosen sets' rows as ``TransferRow``s."""
    from workers.selection.results import TransferRow

    found = repository.rows_of(session, [s.id for s in chosen.sets])
    return [
        TransferRow(r.source, r.target, r.seed, r.score, r.baseline, r.gain, r.metric)
        for r in found
    ]


def _canonical(protocol: dict[str, Any] | None) -> str:
    return json.dumps(protocol or {}, sort_keys=True, default=str)


# --- the deployment's shipped sweeps ---------------------------------------------------------


def sync_shipped(session: Session, settings: Settings) -> list[str]:
    """Import each ``evidence_files`` sweep CSV that is missing or changed since its import;
    returns the names (re)imported. A set keeps its default mark across re-imports."""
    imported = []
    for name, path in settings.evidence_files.items():
        path = Path(path)
        if not path.is_file():
            log.warning("evidence file %s (set %s) not found; skipped", path, name)
            continue
        data = path.read_bytes()
        existing = repository.by_name(session, name)
        if existing is not None and existing.file_hash == hashlib.sha256(data).hexdigest():
            continue
        was_default = existing.is_default if existing is not None else False
        if existing is not None:
            repository.delete_set(session, existing)
        pinned = pinned_settings(path)
        request = ImportRequest(
            name=name,
            transfer_model=str(pinned.pop("encoder", None) or settings.default_transfer_model),
            protocol=pinned,
            default=was_default,
            note=f"sweep shipped with the deployment ({path.name})",
            origin=EvidenceOrigin.SWEEP,
        )
        import_set(session, settings, request, data, path.name)
        imported.append(name)
    return imported


def sync_shipped_logged(context) -> None:
    """``sync_shipped`` in its own transaction, logging what it did; a bad file is logged with
    its first problems and leaves the service running (and that set as it was)."""
    from service.db import unit_of_work
    from service.errors import ServiceError

    try:
        with unit_of_work(context.session_factory) as session:
            imported = sync_shipped(session, context.settings)
    except ServiceError as error:
        shown = "; ".join(
            f"line {p.row}: {p.field}: {p.message}" for p in (error.problems or [])[:3]
        )
        log.error("shipped evidence not imported: %s %s", error.message, shown)
        return
    if imported:
        log.info("imported shipped evidence set(s): %s", ", ".join(imported))
