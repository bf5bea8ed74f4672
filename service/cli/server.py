"""Running the service: ``serve`` (API + embedded worker), ``worker`` (Celery), ``db upgrade``."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import fail, stderr
from service.logs import configure_logging
from service.settings import Settings, get_settings

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Database, artefacts and indexes (default: setting)."),
]


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``worker`` and the ``db`` group to ``app``."""
    app.command()(serve)
    app.command()(worker)
    db = typer.Typer(
        help="The service's database schema (Alembic migrations).", no_args_is_help=True
    )
    db.command("upgrade")(db_upgrade)
    db.command("downgrade")(db_downgrade)
    db.command("current")(db_current)
    app.add_typer(db, name="db")


def settings_for(data_dir: Path | None = None, **overrides) -> Settings:
    """The settings, with command-line values taking precedence over ``TASKREC_*``."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values) if values else get_settings()


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: setting).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: setting).")] = None,
    data_dir: DataDirOption = None,
    library: Annotated[
        bool | None,
        typer.Option("--library/--no-library", help="Register the tasks root as the library."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes on the one port (each runs its own job threads when there is "
            "no broker; jobs are claimed atomically, so none runs twice).",
        ),
    ] = 1,
) -> None:
    """Start the API with its job queue (worker threads here unless a broker is configured)."""
    import uvicorn

    from service.app import create_app
    from service.context import build_context
    from service.db import upgrade

    settings = settings_for(data_dir, host=host, port=port, register_library_on_start=library)
    configure_logging(log_level, settings.log_format)
    upgrade(settings.db_url)
    context = build_context(settings)
    _announce_admin_key(context)
    if settings.register_library_on_start or settings.evidence_files:
        threading.Thread(target=_prepare_library, args=(context,), daemon=True).start()
    stderr.print(
        f"taskrec on http://{settings.host}:{settings.port} — jobs: {context.dispatcher.describe()}"
    )
    if workers == 1:
        uvicorn.run(
            create_app(settings, context=context),
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            log_config=None,  # uvicorn's lines through ours: timestamps, request ids, format
        )
        return
    # Each process builds its app from TASKREC_* (the factory), so the options go there first;
    # this process keeps only the library registration, whose jobs the workers pick up.
    os.environ["TASKREC_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=None,
        workers=workers,
    )


def _announce_admin_key(context) -> None:
    """On first start, create an admin key and show it once (or register TASKREC_ADMIN_KEY)."""
    from service.auth.service import ensure_admin_key
    from service.db import unit_of_work

    configured = (
        context.settings.admin_key.get_secret_value() if context.settings.admin_key else None
    )
    with unit_of_work(context.session_factory) as session:
        key = ensure_admin_key(session, configured)
    if key:
        # Printed to the terminal once, never logged: it is not stored anywhere in clear.
        stderr.print("[bold]First start: an admin API key was created (shown only now):[/bold]")
        print(key, flush=True)


def _prepare_library(context) -> None:
    """Register the tasks root as the library, then import the shipped evidence sets (their
    task names must be library tasks)."""
    from service.auth.service import ADMIN_OWNER
    from service.evidence.service import sync_shipped_logged
    from service.library.service import register_root

    log = logging.getLogger(__name__)
    if context.settings.register_library_on_start:
        count = register_root(context, ADMIN_OWNER)
        if count:
            log.info("registered %s library tasks from %s", count, context.settings.tasks_root)
    sync_shipped_logged(context)


def worker(
    queues: Annotated[
        str,
        typer.Option(
            help="Comma-separated queues: embed, finetune, backfill (library calibration: give "
            "it workers of its own, so owners' jobs always find one free)."
        ),
    ] = "embed,finetune",
    concurrency: Annotated[int, typer.Option(help="Jobs run at once by this worker.")] = 1,
    pool: Annotated[str, typer.Option(help="Celery pool: threads, prefork or solo.")] = "threads",
    hostname: Annotated[str | None, typer.Option(help="Worker name (Celery -n).")] = None,
    data_dir: DataDirOption = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Consume jobs from the broker (needs TASKREC_BROKER_URL and a shared database)."""
    from service.jobs.celery_app import run_worker
    from service.models import JobKind

    settings = settings_for(data_dir)
    if not settings.broker_url:
        fail(
            "taskrec worker needs a broker: set TASKREC_BROKER_URL (e.g. redis://localhost:6379/0)"
        )
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - set(JobKind.QUEUES.values()))
    if unknown:
        fail(f"unknown queue(s) {', '.join(unknown)} (expected embed, finetune, backfill)")
    configure_logging(log_level, settings.log_format)
    run_worker(
        settings,
        names,
        concurrency=concurrency,
        pool=pool,
        hostname=hostname,
        loglevel=log_level.upper(),
    )


def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    data_dir: DataDirOption = None,
) -> None:
    """Create or migrate the schema (SQLite under the data dir, or TASKREC_DATABASE_URL)."""
    from service.db import current_revision, upgrade

    settings = settings_for(data_dir)
    upgrade(settings.db_url, revision)
    stderr.print(f"database at revision {current_revision(settings.db_url)}")


def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' drops everything).")],
    data_dir: DataDirOption = None,
) -> None:
    """Migrate the schema down to ``revision``."""
    from service.db import current_revision, downgrade

    settings = settings_for(data_dir)
    downgrade(settings.db_url, revision)
    stderr.print(f"database at revision {current_revision(settings.db_url)}")


def db_current(data_dir: DataDirOption = None) -> None:
    """Print the schema's current revision."""
    from service.db import current_revision

    print(current_revision(settings_for(data_dir).db_url) or "empty")
