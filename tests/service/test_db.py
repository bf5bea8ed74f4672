"""Migrations: up from empty and down again on SQLite and PostgreSQL; the models match them."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from service.db import current_revision, downgrade, make_engine, upgrade
from service.models import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    yield request.getfixturevalue("fresh_pg_url")


def _tables(url: str) -> set[str]:
    engine = make_engine(url, pooled=False)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_and_down_again(empty_url):
    assert current_revision(empty_url) is None
    upgrade(empty_url)
    assert current_revision(empty_url) == "0004"
    assert _tables(empty_url) == set(Base.metadata.tables) | {"alembic_version"}
    engine = make_engine(empty_url, pooled=False)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []  # models and migrations agree
    engine.dispose()
    downgrade(empty_url, "base")
    assert current_revision(empty_url) is None
    assert _tables(empty_url) == {"alembic_version"}
    upgrade(empty_url)
    assert current_revision(empty_url) == "0004"


def test_the_apis_postgresql_statements_end_at_the_request_deadline(fresh_pg_url):
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    engine = make_engine(fresh_pg_url, statement_timeout_s=0.5)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "500ms"
            schema = connection.execute(text("SHOW search_path")).scalar()
            assert schema.startswith("taskrec_test_")  # the URL's own options are kept
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(3)"))
    finally:
        engine.dispose()
