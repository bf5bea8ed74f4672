"""Load and back-pressure: a burst from one key against the real service, SQLite or PostgreSQL.

    python -m bench.load [--db sqlite|postgresql|both] [--burst 200] [--library 300]

Builds a data directory with ``bench.recommend``'s library (synthetic vectors in the packaged
MiniLM's layout, FAISS files written by the service) and starts ``uvicorn
service.app:create_app`` with the service's own admission, pool and rate-limit defaults (the
rankings cache off, so every recommendation searches). While an embedding job runs (a real task
uploaded and embedded by the packaged MiniLM), one key sends at once: ``--burst``
recommendation requests over many targets, 20 job event streams (SSE) and 5 uploads, while a
probe asks ``/healthz`` every 50 ms. Then a plain request is timed until it answers as fast as
before the burst.

Passes when: no 5xx but 503, ``/healthz`` p99 under 1 s during the burst, no job failed, back to
normal within 5 s, and at least half of the burst served (shedding everything is not a pass).
Results: a Rich table, and JSON in ``bench/out/load.json`` with the machine's load average.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from bench.recommend import BenchConfig, build_library, machine, packaged_layout, serving

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "load.json"
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HEALTH_P99_S, NORMAL_WITHIN_S = 1.0, 5.0

console = Console()
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(
    db: str = typer.Option("both", help="sqlite, postgresql or both."),
    burst: int = typer.Option(200, help="Recommendation requests one key sends at once."),
    library: int = typer.Option(300, help="Library tasks (synthetic vectors)."),
    out: Path = typer.Option(DEFAULT_OUT, help="Where the JSON goes."),
) -> None:
    """Run the burst on each database and print whether it passed."""
    backends = ["sqlite", "postgresql"] if db == "both" else [db]
    results = {"machine": machine(), "burst": burst, "library": library, "runs": {}}
    for backend in backends:
        prefix = f"taskrec-load-{backend}-"
        with tempfile.TemporaryDirectory(prefix=prefix) as folder, _database(backend) as url:
            results["runs"][backend] = run(Path(folder), backend, url, burst, library)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    console.print(_table(results["runs"]))
    failed = [b for b, r in results["runs"].items() if not r["passed"]]
    console.print(
        f"[red]FAILED on {', '.join(failed)}[/red]" if failed else "[green]passed[/green]"
    )
    raise typer.Exit(1 if failed else 0)


def run(folder: Path, backend: str, url: str | None, burst: int, size: int) -> dict[str, Any]:
    """One backend: build, serve, burst, and measure."""
    extra = {"database_url": url} if url else {}
    config = BenchConfig((size,), ("fused",), 1, burst, 60.0, 1)
    lib = build_library(folder, size, packaged_layout(), config, extra)
    if url:  # the library was inserted with explicit ids: move PostgreSQL's sequence past them
        _advance_task_ids(url)
    server_extra = extra | {
        "recommend_cache_size": 0,
        "rate_limit_per_minute": 600,  # the defaults a deployment runs with
        "rate_limit_burst": 120,
        "max_examples": 32,
        "torch_threads": 1,
    }
    probe = _second_key(folder, config.exact_max, extra)
    with serving(folder, config.exact_max, cache=False, extra=server_extra) as server:
        return asyncio.run(_burst(server.url, lib.secret, probe, lib.target_ids, burst))


def _second_key(folder: Path, exact_max: int, extra: dict) -> str:
    """Another key of the bench owner: it times the service's recovery after the burst, which
    the burst key's own rate-limit bucket (spent by the burst) must not be mistaken for."""
    from bench.recommend import bench_settings
    from service.auth.service import issue_key
    from service.db import make_engine, make_session_factory, unit_of_work

    engine = make_engine(bench_settings(folder, exact_max, extra).db_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            return issue_key(session, "bench", label="recovery probe").secret
    finally:
        engine.dispose()


async def _burst(
    url: str, secret: str, probe_secret: str, targets: list[int], burst: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {secret}"}
    probe_headers = {"Authorization": f"Bearer {probe_secret}"}
    limits = httpx.Limits(max_connections=burst + 64, max_keepalive_connections=burst + 64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        before = await _plain_latency(client, probe_headers, 20)
        job = await _upload(client, headers, "embedding-during-burst")
        await asyncio.sleep(0.5)  # its embedding job has started
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe_health(client, stop))
        rng = np.random.default_rng(0)
        started = time.perf_counter()
        tasks = [
            *(
                client.get(
                    f"/v1/tasks/{int(rng.choice(targets))}/recommendations",
                    params={"k": int(rng.integers(1, 50)), "method": "fused"},
                    headers=headers,
                )
                for _ in range(burst)
            ),
            *(_stream(client, headers, job) for _ in range(20)),
            *(_upload_response(client, headers, f"during-{i}") for i in range(5)),
        ]
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        burst_s = time.perf_counter() - started
        stop.set()
        health = await probe
        normal_s = await _back_to_normal(client, probe_headers, before)
        jobs = await _jobs_settled(client, probe_headers)
    statuses = Counter(_status(a) for a in answers[:burst])
    others = Counter(_status(a) for a in answers[burst:])
    served = statuses.get("200", 0)
    answered = statuses + others
    server_errors = sum(n for s, n in answered.items() if s[0] == "5" and not s.startswith("503"))
    result = {
        "burst_statuses": dict(statuses),
        "stream_and_upload_statuses": dict(others),
        "served_share": round(served / burst, 3),
        "burst_s": round(burst_s, 2),
        "health_p50_ms": round(1000 * statistics.median(health), 1),
        "health_p99_ms": round(1000 * float(np.percentile(health, 99)), 1),
        "health_probes": len(health),
        "plain_before_ms": round(1000 * before, 1),
        "back_to_normal_s": round(normal_s, 2),
        "jobs": jobs,
        "server_errors": server_errors,
    }
    result["passed"] = (
        server_errors == 0
        and result["health_p99_ms"] < 1000 * HEALTH_P99_S
        and jobs.get("failed", 0) == 0
        and normal_s <= NORMAL_WITHIN_S
        and result["served_share"] >= 0.5
    )
    return result


async def _plain_latency(client: httpx.AsyncClient, headers: dict, n: int) -> float:
    """The median seconds of ``GET /v1/me`` over ``n`` requests, one at a time."""
    times = []
    for _ in range(n):
        started = time.perf_counter()
        (await client.get("/v1/me", headers=headers)).raise_for_status()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def _back_to_normal(client: httpx.AsyncClient, headers: dict, before: float) -> float:
    """Seconds after the burst until ``/v1/me`` answers within 2× (+20 ms) its earlier time."""
    started = time.perf_counter()
    while time.perf_counter() - started < 60:
        if await _plain_latency(client, headers, 3) <= 2 * before + 0.02:
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    return float("inf")


async def _probe_health(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    times = []
    while not stop.is_set():
        started = time.perf_counter()
        try:
            await client.get("/healthz", timeout=5)
            times.append(time.perf_counter() - started)
        except httpx.HTTPError:
            times.append(5.0)
        await asyncio.sleep(0.05)
    return times or [0.0]


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    words = ["good", "great", "fine", "bad", "awful", "poor", "long", "dull"]
    return [
        {
            "id": f"r{i}",
            "text": f"the film was {words[(i + seed) % 8]} and {words[(i * 3 + seed) % 8]}",
            "label": "pos" if (i + seed) % 8 < 4 else "neg",
        }
        for i in range(n)
    ]


async def _upload_response(client: httpx.AsyncClient, headers: dict, name: str) -> httpx.Response:
    body = {
        "name": f"{name}-{uuid.uuid4().hex[:6]}",
        "type": "classification",
        "labels": ["neg", "pos"],
        "metric": "accuracy",
        "train": _rows(32, len(name)),
    }
    return await client.post("/v1/tasks", json=body, headers=headers)


async def _upload(client: httpx.AsyncClient, headers: dict, name: str) -> int:
    response = await _upload_response(client, headers, name)
    response.raise_for_status()
    return response.json()["embedding"]["job_id"]


async def _stream(client: httpx.AsyncClient, headers: dict, job_id: int) -> httpx.Response:
    """Follow a job's event stream for two seconds (or to its end)."""
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        deadline = time.perf_counter() + 2
        async for _ in response.aiter_lines():
            if time.perf_counter() > deadline:
                break
        return response


async def _jobs_settled(client: httpx.AsyncClient, headers: dict, timeout: float = 300) -> dict:
    """Jobs by state once none is queued or running (or at the timeout)."""
    deadline = time.perf_counter() + timeout
    while True:
        page = (await client.get("/v1/jobs", params={"limit": 500}, headers=headers)).json()
        states = Counter(job["state"] for job in page["items"])
        if not (states["queued"] or states["running"]) or time.perf_counter() > deadline:
            return dict(states)
        await asyncio.sleep(1)


def _advance_task_ids(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('tasks', 'id'), (SELECT max(id) FROM tasks))"
            )
        )
    engine.dispose()


def _status(answer: Any) -> str:
    """``200``, or a refusal's status and error code (``503 overloaded``)."""
    if isinstance(answer, httpx.Response):
        if answer.status_code < 400:
            return str(answer.status_code)
        try:
            return f"{answer.status_code} {answer.json().get('error')}"
        except (ValueError, httpx.ResponseNotRead):
            return str(answer.status_code)
    return type(answer).__name__  # a transport error: counted apart, never as served


@contextmanager
def _database(backend: str):
    """None for SQLite (under the data directory); a fresh PostgreSQL schema, dropped after."""
    if backend == "sqlite":
        yield None
        return
    import psycopg

    schema = f"taskrec_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _table(runs: dict[str, dict[str, Any]]) -> Table:
    table = Table(
        "db", "burst answers", "served", "healthz p50 / p99 ms", "normal after s", "jobs", "5xx",
        "pass",
        title="A burst from one key (no 5xx but 503; healthz p99 < 1 s; normal within 5 s)",
    )  # fmt: skip
    for backend, r in runs.items():
        table.add_row(
            backend,
            ", ".join(f"{s}: {n}" for s, n in sorted(r["burst_statuses"].items())),
            f"{100 * r['served_share']:.0f}%",
            f"{r['health_p50_ms']} / {r['health_p99_ms']}",
            str(r["back_to_normal_s"]),
            ", ".join(f"{s}: {n}" for s, n in sorted(r["jobs"].items())),
            str(r["server_errors"]),
            "yes" if r["passed"] else "NO",
        )
    return table


if __name__ == "__main__":
    app()
