"""Fixtures for service tests: the database (SQLite and PostgreSQL, built with Alembic), the app
with its embedded worker, API keys for two owners and an admin, and small tasks.

Embedding jobs use a tiny random BERT and 16 examples, with one embedding cache shared by the
whole session, so identical task data is embedded once.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.db import make_engine, make_session_factory, unit_of_work, upgrade
from service.settings import Settings

PG_HOST = os.environ.get("TASKREC_TEST_PG_HOST", "127.0.0.1")
PG_URL = f"postgresql+psycopg://postgres@{PG_HOST}:5432/test"
FINAL_STATES = ("succeeded", "failed", "cancelled")


# --- embedding cache (the tiny encoder comes from tests/conftest.py) ----------------------------


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


# --- databases --------------------------------------------------------------------------------


def pg_reachable() -> str | None:
    """None if PostgreSQL answers, else why not."""
    try:
        with psycopg.connect(f"host={PG_HOST} user=postgres dbname=test", connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at {PG_HOST}:5432 (database test) unreachable: {exc}"


@dataclass
class Database:
    kind: str  # sqlite | postgresql
    url: str  # the session's database (PostgreSQL: a schema of its own)
    template: Path | None = None  # SQLite: a migrated file copied for each test
    schema: str | None = None

    def fresh_url(self, folder: Path) -> str:
        """An empty, migrated database for one test."""
        if self.kind == "sqlite":
            path = folder / "taskrec.db"
            shutil.copyfile(self.template, path)
            return f"sqlite:///{path}"
        truncate_all(self.schema)
        return self.url


def create_pg_schema() -> tuple[str, str]:
    schema = f"taskrec_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"host={PG_HOST} user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_pg_schema(schema: str) -> None:
    with psycopg.connect(f"host={PG_HOST} user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def truncate_all(schema: str) -> None:
    with psycopg.connect(f"host={PG_HOST} user=postgres dbname=test", autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename != "
                "'alembic_version'",
                (schema,),
            )
        ]
        if tables:
            names = ", ".join(f'"{schema}"."{t}"' for t in tables)
            conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database(request, tmp_path_factory) -> Iterator[Database]:
    """Each backend, its schema built once with ``alembic upgrade head``."""
    if request.param == "sqlite":
        template = tmp_path_factory.mktemp("sqlite-template") / "template.db"
        url = f"sqlite:///{template}"
        upgrade(url)
        make_engine(url, pooled=False).dispose()
        yield Database("sqlite", url, template=template)
        return
    reason = pg_reachable()
    if reason:
        pytest.skip(reason)
    schema, url = create_pg_schema()
    try:
        upgrade(url)
        yield Database("postgresql", url, schema=schema)
    finally:
        drop_pg_schema(schema)


@pytest.fixture()
def fresh_pg_url() -> Iterator[str]:
    """An empty PostgreSQL schema of its own (skipped when the server is unreachable)."""
    reason = pg_reachable()
    if reason:
        pytest.skip(reason)
    schema, url = create_pg_schema()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


@pytest.fixture()
def db_url(database: Database, tmp_path: Path) -> str:
    return database.fresh_url(tmp_path)


# --- settings, app, client --------------------------------------------------------------------


def make_settings(data_dir: Path, db_url: str, encoder: Path, cache: Path, **overrides) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": db_url,
        "model": str(encoder),
        "cache_path": cache,
        "tasks_root": data_dir.parent / "library",
        "max_examples": 16,
        "embed_batch_size": 16,
        "taskemb_train_epochs": 1.0,
        "broker_url": None,
        "embedded_workers": 1,
        "job_poll_interval_s": 0.05,
        "job_heartbeat_s": 0.5,
        "job_stale_after_s": 10.0,
        "job_reap_interval_s": 1.0,
        "job_progress_interval_s": 0.0,
        "job_retry_backoff_s": 0.1,
        "sse_poll_interval_s": 0.05,
        "rate_limit_per_minute": 0,
        "register_library_on_start": False,
        "device": "cpu",
        "torch_threads": 1,  # the test machine is small and shared: more threads only contend
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture()
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the app's settings."""
    return {}


@pytest.fixture()
def settings(tmp_path, db_url, tiny_encoder_dir, embedding_cache, settings_overrides) -> Settings:
    (tmp_path / "library").mkdir(exist_ok=True)
    return make_settings(
        tmp_path / "data", db_url, tiny_encoder_dir, embedding_cache, **settings_overrides
    )


@pytest.fixture()
def client(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan (embedded worker threads running)."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture()
def session_factory(settings: Settings):
    engine = make_engine(settings.db_url)
    yield make_session_factory(engine)
    engine.dispose()


@dataclass
class Keys:
    alice: dict[str, str]
    bob: dict[str, str]
    admin: dict[str, str]
    secrets: dict[str, str]


@pytest.fixture()
def keys(session_factory) -> Keys:
    """Authorization headers for two owners and an admin."""
    from service.auth.service import issue_key

    secrets = {}
    with unit_of_work(session_factory) as session:
        for name, admin in (("alice", False), ("bob", False), ("root", True)):
            secrets[name] = issue_key(session, name, admin=admin).secret

    def header(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secrets[name]}"}

    return Keys(header("alice"), header("bob"), header("root"), secrets)


# --- task data --------------------------------------------------------------------------------

WORDS = ["good", "great", "fine", "bad", "awful", "poor", "long", "short", "funny", "dull"]


def sentiment_rows(n: int, offset: int = 0, vocabulary: int = 6) -> list[dict[str, Any]]:
    """Deterministic two-label rows; ``offset`` and ``vocabulary`` make tasks differ."""
    return [
        {
            "id": f"r{i}",
            "text": f"the film was {WORDS[(i + offset) % vocabulary]} and "
            f"{WORDS[(i * 7 + offset) % vocabulary]}",
            "label": "pos" if (i + offset) % vocabulary < vocabulary // 2 else "neg",
        }
        for i in range(n)
    ]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture()
def upload(client: TestClient) -> Callable[..., Any]:
    """POST a classification task as multipart JSONL; returns the response."""

    def post(
        headers: dict[str, str],
        name: str = "toy",
        *,
        rows: list[dict[str, Any]] | None = None,
        validation: list[dict[str, Any]] | None = None,
        labels: str = "neg,pos",
        type: str = "classification",
        offset: int = 0,
        vocabulary: int = 6,
    ):
        rows = rows if rows is not None else sentiment_rows(24, offset, vocabulary)
        files = {"train": ("train.jsonl", jsonl(rows), "application/jsonl")}
        if validation is not None:
            files["validation"] = ("validation.jsonl", jsonl(validation), "application/jsonl")
        data = {"name": name, "type": type, "labels": labels, "metric": "accuracy"}
        return client.post("/v1/tasks", data=data, files=files, headers=headers)

    return post


@pytest.fixture()
def wait_job(client: TestClient) -> Callable[..., dict[str, Any]]:
    """Poll a job until it reaches a final state; returns its last JSON."""

    def wait(job_id: int, headers: dict[str, str], timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
            if body["state"] in FINAL_STATES:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {body['state']} after {timeout} s")
            time.sleep(0.05)

    return wait


@pytest.fixture()
def ready_task(upload, wait_job) -> Callable[..., dict[str, Any]]:
    """Upload a task and wait for its embeddings; returns the task JSON after the upload."""

    def make(headers: dict[str, str], name: str, **kwargs) -> dict[str, Any]:
        response = upload(headers, name, **kwargs)
        assert response.status_code == 201, response.text
        task = response.json()
        job = wait_job(task["embedding"]["job_id"], headers)
        assert job["state"] == "succeeded", job
        return task

    return make


@pytest.fixture()
def make_rows() -> Callable[..., list[dict[str, Any]]]:
    return sentiment_rows


@pytest.fixture()
def to_jsonl() -> Callable[[list[dict[str, Any]]], bytes]:
    return jsonl


@pytest.fixture()
def table_counts(session_factory) -> Callable[[], dict[str, int]]:
    """Rows per table, to check that a rejected request left nothing behind."""
    from sqlalchemy import func, select

    from service.models import Base

    def count() -> dict[str, int]:
        with unit_of_work(session_factory) as session:
            return {
                name: session.scalar(select(func.count()).select_from(table))
                for name, table in Base.metadata.tables.items()
                if name not in ("owners", "api_keys")
            }

    return count


@pytest.fixture()
def stored_files(settings: Settings) -> Callable[[], list[Path]]:
    """Files under the artefact and staging folders."""

    def files() -> list[Path]:
        found = []
        for folder in (settings.artifacts_dir, settings.staging_dir):
            if folder.exists():
                found += [p for p in folder.rglob("*") if p.is_file()]
        return sorted(found)

    return files


NAMED_LIBRARY = ("mnli", "snli", "qnli", "rte", "mrpc")


@pytest.fixture()
def named_library(session_factory, keys) -> tuple[str, ...]:
    """Library tasks by name (evidence names tasks; no embeddings needed to import)."""
    from service.auth.repository import owner_by_name
    from service.models import Task

    with unit_of_work(session_factory) as session:
        admin = owner_by_name(session, "root")
        for name in NAMED_LIBRARY:
            session.add(
                Task(
                    owner_id=admin.id,
                    name=name,
                    type="classification",
                    metric="accuracy",
                    source="rows",
                    content_hash=name,
                    is_library=True,
                    status="ready",
                )
            )
    return NAMED_LIBRARY
