"""Queries on evidence sets and their rows."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from service.models import EvidenceRow, EvidenceSet, Task


def by_name(session: Session, name: str) -> EvidenceSet | None:
    return session.scalar(select(EvidenceSet).where(EvidenceSet.name == name))


def all_sets(session: Session) -> list[EvidenceSet]:
    return list(session.scalars(select(EvidenceSet).order_by(EvidenceSet.name)))


def stamp(session: Session) -> tuple:
    """Changes whenever a set is added, removed, re-imported or made (not) default (cache
    keys). The file's hash is part of it: SQLite gives a set imported after a deletion the
    deleted set's id, so ids alone would let a ranker fitted on the old rows answer for the
    new ones."""
    query = select(EvidenceSet.id, EvidenceSet.is_default, EvidenceSet.file_hash)
    return tuple(tuple(row) for row in session.execute(query.order_by(EvidenceSet.id)))


def add_rows(session: Session, set_id: int, rows: Iterable) -> None:
    """Insert ``TransferRow``s into the set in one statement per batch."""
    batch: list[dict] = []
    for row in rows:
        batch.append(
            {
                "set_id": set_id,
                "source": row.source,
                "target": row.target,
                "seed": row.seed,
                "score": row.score,
                "baseline": row.baseline,
                "gain": row.gain,
                "metric": row.metric,
            }
        )
        if len(batch) == 5000:
            session.execute(insert(EvidenceRow), batch)
            batch = []
    if batch:
        session.execute(insert(EvidenceRow), batch)


def rows_of(session: Session, set_ids: list[int]) -> list[EvidenceRow]:
    query = select(EvidenceRow).where(EvidenceRow.set_id.in_(set_ids)).order_by(EvidenceRow.id)
    return list(session.scalars(query))


def page_rows(session: Session, set_id: int, limit: int, offset: int) -> list[EvidenceRow]:
    query = (
        select(EvidenceRow)
        .where(EvidenceRow.set_id == set_id)
        .order_by(EvidenceRow.target, EvidenceRow.source, EvidenceRow.seed)
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(query))


def clear_rows(session: Session, set_id: int) -> None:
    session.execute(delete(EvidenceRow).where(EvidenceRow.set_id == set_id))


def sources_of(session: Session, set_ids: list[int]) -> set[str]:
    """Every task measured as a source in the sets."""
    if not set_ids:
        return set()
    query = select(EvidenceRow.source).where(EvidenceRow.set_id.in_(set_ids)).distinct()
    return set(session.scalars(query))


def delete_set(session: Session, evidence_set: EvidenceSet) -> None:
    # The rows in one statement, not left to the ORM to load and delete one by one.
    session.execute(delete(EvidenceRow).where(EvidenceRow.set_id == evidence_set.id))
    session.delete(evidence_set)
    session.flush()


def clear_defaults(session: Session, set_ids: list[int]) -> None:
    if set_ids:
        session.execute(
            update(EvidenceSet).where(EvidenceSet.id.in_(set_ids)).values(is_default=False)
        )


def library_names(session: Session) -> set[str]:
    return set(session.scalars(select(Task.name).where(Task.is_library.is_(True))))


def count(session: Session) -> int:
    return session.scalar(select(func.count(EvidenceSet.id))) or 0
