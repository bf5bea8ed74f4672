"""Keys are stored hashed; the first admin key is created once, or taken from the setting."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from service.auth import service
from service.db import unit_of_work
from service.models import ApiKey, Owner


def test_keys_are_random_and_stored_hashed(session_factory):
    with unit_of_work(session_factory) as session:
        first = service.issue_key(session, "carol")
        second = service.issue_key(session, "carol")
    assert first.secret != second.secret and first.secret.startswith("trk_")
    assert len(first.secret) > 40
    with unit_of_work(session_factory) as session:
        stored = session.scalars(select(ApiKey)).all()
        assert {k.key_hash for k in stored} == {
            hashlib.sha256(s.encode()).hexdigest() for s in (first.secret, second.secret)
        }
        assert all(first.secret not in (k.prefix, k.key_hash) for k in stored)


def test_first_admin_key_is_created_once(session_factory):
    with unit_of_work(session_factory) as session:
        key = service.ensure_admin_key(session, None)
    assert key and key.startswith("trk_")
    with unit_of_work(session_factory) as session:
        assert service.ensure_admin_key(session, None) is None
        assert service.authenticate(session, key).owner.is_admin


def test_configured_admin_key_is_registered(session_factory):
    configured = "trk_" + "x" * 40
    with unit_of_work(session_factory) as session:
        assert service.ensure_admin_key(session, configured) is None
        assert service.ensure_admin_key(session, configured) is None  # idempotent
    with unit_of_work(session_factory) as session:
        owner = service.authenticate(session, configured).owner
        assert owner.name == "admin" and owner.is_admin
        assert len(session.scalars(select(Owner)).all()) == 1
