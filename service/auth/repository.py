"""Every query of the auth domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service.models import ApiKey, Owner


def key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def keys_matching(session: Session, ref: str) -> list[ApiKey]:
    """Keys whose id or prefix is ``ref``."""
    condition = ApiKey.prefix == ref
    if ref.isdigit():
        condition = or_(condition, ApiKey.id == int(ref))
    return list(session.scalars(select(ApiKey).where(condition)))


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def owner_by_name(session: Session, name: str) -> Owner | None:
    return session.scalar(select(Owner).where(Owner.name == name))


def add_owner(session: Session, name: str, is_admin: bool) -> Owner:
    owner = Owner(name=name, is_admin=is_admin)
    session.add(owner)
    session.flush()
    return owner


def add_key(
    session: Session, owner: Owner, prefix: str, key_hash: str, label: str | None
) -> ApiKey:
    key = ApiKey(owner_id=owner.id, prefix=prefix, key_hash=key_hash, label=label)
    session.add(key)
    session.flush()
    return key


def touch_key(session: Session, key_id: int, now: datetime, *, since: datetime) -> None:
    """Set ``last_used_at`` to ``now`` unless another request set it after ``since``."""
    session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < since))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


def has_active_admin_key(session: Session) -> bool:
    query = (
        select(ApiKey.id)
        .join(Owner, Owner.id == ApiKey.owner_id)
        .where(Owner.is_admin.is_(True), ApiKey.revoked_at.is_(None))
        .limit(1)
    )
    return session.scalar(query) is not None
