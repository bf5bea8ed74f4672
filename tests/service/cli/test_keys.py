"""``taskrec keys``: a new key is printed alone on stdout and works; revoked keys stop working."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from service.auth.service import authenticate
from service.cli import app
from service.db import make_engine, make_session_factory, unit_of_work


@pytest.fixture()
def data_dir(tmp_path):
    return tmp_path / "data"


def _owner_of(data_dir, key):
    engine = make_engine(f"sqlite:///{data_dir.resolve() / 'taskrec.db'}", pooled=False)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            owner = authenticate(session, key).owner
            return owner.name, owner.is_admin
    finally:
        engine.dispose()


def test_create_prints_the_key_alone(data_dir, monkeypatch):
    monkeypatch.delenv("TASKREC_DATABASE_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(
        app, ["keys", "create", "--admin", "--owner", "ops", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert result.stdout == key + "\n" and key.startswith("trk_")
    assert _owner_of(data_dir, key) == ("ops", True)
    plain = runner.invoke(app, ["keys", "create", "--owner", "dev", "--data-dir", str(data_dir)])
    assert _owner_of(data_dir, plain.stdout.strip()) == ("dev", False)
    listed = json.loads(
        runner.invoke(app, ["keys", "list", "--json", "--data-dir", str(data_dir)]).stdout
    )
    assert [(k["owner"], k["admin"], k["revoked"]) for k in listed] == [
        ("ops", True, False),
        ("dev", False, False),
    ]
    assert all(key not in json.dumps(k) for k in listed)


def test_revoke_by_prefix(data_dir, monkeypatch):
    monkeypatch.delenv("TASKREC_DATABASE_URL", raising=False)
    runner = CliRunner()
    key = runner.invoke(
        app, ["keys", "create", "--owner", "dev", "--data-dir", str(data_dir)]
    ).stdout.strip()
    result = runner.invoke(app, ["keys", "revoke", key[:12], "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    from service.auth.exceptions import NotAuthenticated

    with pytest.raises(NotAuthenticated):
        _owner_of(data_dir, key)
    missing = runner.invoke(app, ["keys", "revoke", "trk_nothing", "--data-dir", str(data_dir)])
    assert missing.exit_code == 2 and "no API key matches" in missing.output
