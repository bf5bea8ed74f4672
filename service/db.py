"""Database engine and sessions, the unit of work at the edge, and Alembic entry points.

SQLite (a file under the data directory) by default, PostgreSQL through psycopg 3 by URL. The
edge (a request dependency or the job wrapper) owns the transaction: services only ``flush()``,
and work that must follow the commit (enqueueing a job, updating an index, deleting files) is
registered with :func:`on_commit` / :func:`on_rollback`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
_AFTER_COMMIT = "taskrec.after_commit"
_AFTER_ROLLBACK = "taskrec.after_rollback"
# A request holds its connection from the key check to the commit, so every request in flight
# needs one: with SQLAlchemy's default 5 + 10, slow requests (searches of a large library under
# 50 clients) waited for a connection and failed after 30 s. SQLite connections are cheap: room
# for 60 requests in flight, with worker threads beside them.
SQLITE_POOL = {"pool_size": 40, "max_overflow": 20}


def make_engine(
    url: str,
    *,
    pooled: bool = True,
    pool_size: int = 10,
    max_overflow: int = 40,
    pool_timeout: float = 30.0,
    statement_timeout_s: float | None = None,
) -> Engine:
    """An engine for ``url``; SQLite files get WAL, foreign keys and a busy timeout.

    ``pooled=False`` keeps no connection open between uses (migrations, one-off commands).
    ``statement_timeout_s``: PostgreSQL cancels any statement running longer (the API's
    request deadline; jobs' engines have none).
    A server's pool must cover its request threads (40 by default) plus its job workers, or
    requests queue for a connection under load.
    """
    parsed = make_url(url)
    pool = {} if pooled else {"poolclass": NullPool}
    if parsed.get_backend_name() != "sqlite":
        if pooled:
            pool = {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": max_overflow}
            pool["pool_timeout"] = pool_timeout  # a request waits this long, then gets a 503
        if statement_timeout_s:  # PostgreSQL ends a statement (or a lock wait) past it
            options = parsed.query.get("options", "")
            timeout = f"-c statement_timeout={int(statement_timeout_s * 1000)}"
            pool["connect_args"] = {"options": f"{options} {timeout}".strip()}
        return create_engine(url, **pool)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        pool = pool or {**SQLITE_POOL, "pool_timeout": pool_timeout}
    connect_args = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, connect_args=connect_args, **pool)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: responses are built from them once the edge commits.
    return sessionmaker(engine, expire_on_commit=False)


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed (dropped on rollback)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def on_rollback(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` if the session's transaction rolls back (undo files written meanwhile)."""
    session.info.setdefault(_AFTER_ROLLBACK, []).append(callback)


def commit(session: Session) -> None:
    """Commit, then run the after-commit callbacks (a failing callback is logged, not raised)."""
    session.commit()
    session.info.pop(_AFTER_ROLLBACK, None)
    _run(session.info.pop(_AFTER_COMMIT, []), "after-commit")


def rollback(session: Session) -> None:
    """Roll back, drop the after-commit callbacks and run the after-rollback ones."""
    session.rollback()
    session.info.pop(_AFTER_COMMIT, None)
    _run(session.info.pop(_AFTER_ROLLBACK, []), "after-rollback")


def _run(callbacks: list[Callable[[], None]], what: str) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("%s callback failed", what)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any exception."""
    session = factory()
    try:
        yield session
        commit(session)
    except BaseException:
        rollback(session)
        raise
    finally:
        session.close()


def alembic_config(url: str):
    """An Alembic ``Config`` for ``migrations/`` bound to ``url`` (no ini file needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision`` (from empty, if need be)."""
    from alembic import command

    if make_url(url).get_backend_name() == "sqlite":
        make_engine(url, pooled=False).dispose()  # creates the parent folder of a new SQLite file
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url, pooled=False)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
