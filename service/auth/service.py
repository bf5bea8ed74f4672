"""API keys: random 32-byte secrets shown once, stored as SHA-256, revocable; owners and admins."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from service.auth import repository
from service.auth.exceptions import AmbiguousKey, KeyNotFound, NotAuthenticated
from service.db import on_commit, unit_of_work
from service.models import ApiKey, Owner, utcnow

KEY_PREFIX = "trk_"
PREFIX_LENGTH = 12  # "trk_" + 8 characters: enough to name a key in listings and logs
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute
ADMIN_OWNER = "admin"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A key just created: ``secret`` is shown to its holder once and never stored."""

    key: ApiKey
    secret: str


def issue_key(
    session: Session, owner_name: str, *, admin: bool = False, label: str | None = None
) -> IssuedKey:
    """A new key for ``owner_name`` (created if new; ``admin`` grants the owner the admin role)."""
    owner = repository.owner_by_name(session, owner_name)
    if owner is None:
        owner = repository.add_owner(session, owner_name, is_admin=admin)
    elif admin:
        owner.is_admin = True
    return _store_key(session, owner, generate_key(), label)


def _store_key(session: Session, owner: Owner, secret: str, label: str | None) -> IssuedKey:
    key = repository.add_key(session, owner, secret[:PREFIX_LENGTH], hash_key(secret), label)
    return IssuedKey(key=key, secret=secret)


def authenticate(session: Session, key: str | None) -> ApiKey:
    """The active key ``key`` names; 401 when it is missing, unknown or revoked."""
    if not key:
        raise NotAuthenticated("missing API key: send 'Authorization: Bearer <key>'")
    api_key = repository.key_by_hash(session, hash_key(key))
    if api_key is None:
        raise NotAuthenticated("unknown API key")
    if api_key.revoked_at is not None:
        raise NotAuthenticated("this API key has been revoked")
    return api_key


def note_use(session: Session, factory: sessionmaker[Session], api_key: ApiKey) -> None:
    """Record that the key was used (at most once per ``LAST_USED_RESOLUTION``).

    The write waits for the request to commit and has a transaction of its own: made in the
    request's, it held SQLite's write lock (PostgreSQL: the key's row) until the request ended,
    so every other request seeing the same stale time queued behind it, and under load failed
    with "database is locked" after 30 s.
    """
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        on_commit(session, partial(_touch, factory, api_key.id, now))


def _touch(factory: sessionmaker[Session], key_id: int, now: datetime) -> None:
    with unit_of_work(factory) as session:
        repository.touch_key(session, key_id, now, since=now - LAST_USED_RESOLUTION)


def revoke_key(session: Session, ref: str) -> ApiKey:
    """Revoke the key named by ``ref``: the key itself, its prefix or its id."""
    if ref.startswith(KEY_PREFIX) and len(ref) > PREFIX_LENGTH:
        found = repository.key_by_hash(session, hash_key(ref))
        matches = [found] if found else []
    else:
        matches = repository.keys_matching(session, ref)
    if not matches:
        raise KeyNotFound(f"no API key matches {ref!r}")
    if len(matches) > 1:
        raise AmbiguousKey(f"{len(matches)} keys match {ref!r}; give the key id")
    key = matches[0]
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return repository.list_keys(session)


def ensure_admin_key(session: Session, configured: str | None) -> str | None:
    """Make sure an admin can log in; returns a newly generated key to show once, else None.

    A configured key (``TASKREC_ADMIN_KEY``) is registered for the ``admin`` owner if new; with
    none configured, a key is generated only when no active admin key exists yet.
    """
    if configured:
        if repository.key_by_hash(session, hash_key(configured)) is None:
            owner = repository.owner_by_name(session, ADMIN_OWNER)
            if owner is None:
                owner = repository.add_owner(session, ADMIN_OWNER, is_admin=True)
            owner.is_admin = True
            _store_key(session, owner, configured, "TASKREC_ADMIN_KEY")
        return None
    if repository.has_active_admin_key(session):
        return None
    return issue_key(session, ADMIN_OWNER, admin=True, label="first start").secret
