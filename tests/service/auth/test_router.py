"""API keys: Bearer authentication, revocation, the admin role and the per-key rate limit."""

from __future__ import annotations

import pytest


def test_missing_unknown_and_malformed_keys_are_401(client):
    for headers in ({}, {"Authorization": "Bearer trk_nope"}, {"Authorization": "Basic abc"}):
        response = client.get("/v1/tasks", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"] == "not_authenticated"


def test_me(client, keys):
    assert client.get("/v1/me", headers=keys.alice).json()["name"] == "alice"
    assert client.get("/v1/me", headers=keys.admin).json()["is_admin"] is True


def test_revoked_key_is_401(client, keys):
    prefix = keys.secrets["bob"][:12]
    response = client.delete(f"/v1/keys/{prefix}", headers=keys.admin)
    assert response.status_code == 200 and response.json()["revoked_at"]
    response = client.get("/v1/me", headers=keys.bob)
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_only_admins_manage_keys(client, keys):
    assert client.get("/v1/keys", headers=keys.alice).status_code == 403
    assert client.post("/v1/keys", json={"owner": "eve"}, headers=keys.alice).status_code == 403
    created = client.post("/v1/keys", json={"owner": "eve", "label": "ci"}, headers=keys.admin)
    assert created.status_code == 201
    key = created.json()["key"]
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).json()
    assert me == {"id": me["id"], "name": "eve", "is_admin": False}
    listed = client.get("/v1/keys", headers=keys.admin).json()
    assert all("key" not in k for k in listed)  # keys are shown once, at creation
    assert {k["owner"]["name"] for k in listed} == {"alice", "bob", "root", "eve"}


@pytest.fixture()
def settings_overrides():
    return {"rate_limit_per_minute": 5}


def test_rate_limit_per_key(client, keys):
    statuses = [client.get("/v1/me", headers=keys.alice).status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
    limited = client.get("/v1/me", headers=keys.alice)
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get("/v1/me", headers=keys.bob).status_code == 200  # per key, not global


def test_last_use_is_recorded_once_the_request_commits(client, keys):
    assert client.get("/v1/me", headers=keys.alice).status_code == 200
    listed = {k["owner"]["name"]: k for k in client.get("/v1/keys", headers=keys.admin).json()}
    assert listed["alice"]["last_used_at"] is not None
    assert listed["bob"]["last_used_at"] is None
    first = listed["alice"]["last_used_at"]
    client.get("/v1/me", headers=keys.alice)  # within a minute: not written again
    listed = {k["owner"]["name"]: k for k in client.get("/v1/keys", headers=keys.admin).json()}
    assert listed["alice"]["last_used_at"] == first
