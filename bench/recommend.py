"""Recommendation latency and throughput against the real service, and FAISS against NumPy.

    python -m bench.recommend [--sizes 1000,100000] [--clients 50] [--quick]

For each library size it builds a fresh data directory: SQLite migrated with Alembic, an owner
and API key issued by the service, library tasks and their vectors bulk-inserted (SQLAlchemy core
``insert`` in batches) in the component layout of the packaged MiniLM (13 TaskEmb components,
TextEmb, SEmb; 384 values each; its real encoder id), the library version bumped and the FAISS
files written by the service's own ``IndexStore``. It then starts ``uvicorn`` serving
``service.app:create_app`` on a free loopback port (embedded worker, no rate limit, warning-level
logs) and drives ``GET /v1/tasks/{id}/recommendations`` for each method with ``httpx`` clients:
first one client (service time), then ``--clients`` concurrent ones (closed loop: each sends its
next request when the previous one answers), each run bounded by a request count and a time
limit, with the server process's CPU time per request. ``/healthz`` and ``/v1/me`` under the
same load give the floor of the HTTP stack on this machine.

Before the server starts, FAISS (``IndexFlatIP`` over normalised vectors, as the service builds
it) is timed against a NumPy scan (``matrix @ query``, ``argpartition``, sort) of one
component's vectors, one query at a time on one thread, at ``k`` and at the depth the service
asks FAISS for (``TASKREC_RECOMMEND_CANDIDATES``).

Results: Rich tables, and JSON in ``bench/out/recommend.json`` with the machine's load average.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import faiss
import httpx
import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from service.auth.service import issue_key
from service.db import make_engine, make_session_factory, unit_of_work, upgrade
from service.embeddings.repository import to_blob
from service.models import Embedding, Task, TaskSource, TaskStatus, utcnow
from service.recommendations import repository as library
from service.recommendations.index import IndexStore, new_index, normalised
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "recommend.json"
TARGET_P99_MS = 50.0
TARGET_SIZE = 100_000
TASK_TYPES = ("classification", "regression", "multiple_choice", "extractive_qa")
BATCH_ROWS = 10_000  # rows per INSERT batch (one transaction each)
TARGETS = 50  # distinct target tasks the clients ask about
RECALL_TARGETS = 20  # targets whose served top-k is compared with an exact search
DEPTH = Settings.model_fields["recommend_candidates"].default
NPROBE = Settings.model_fields["index_nprobe"].default

console = Console()
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@dataclass(frozen=True)
class Layout:
    """The vectors one task has: per method, its components; all ``dim`` wide."""

    model: str  # the model name the service's default setting asks for
    encoder_id: str
    encoder_name: str
    revision: str
    dim: int
    components: dict[str, list[str]]

    def vectors(self) -> list[tuple[str, str]]:
        return [(m, c) for m, names in self.components.items() for c in names]


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run measures."""

    sizes: tuple[int, ...]
    methods: tuple[str, ...]
    clients: int
    max_requests: int
    max_seconds: float
    serial_requests: int
    k: int = 10
    seed: int = 0
    exact_max: int = Settings.model_fields["index_exact_max"].default  # above: IVF
    workers: int = 1  # server processes (uvicorn --workers, as taskrec serve --workers)


@dataclass
class Run:
    """One load run against one endpoint: latencies of the 200s, the rest counted as errors."""

    endpoint: str
    clients: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    server_cpu_s: float = 0.0  # the server process's CPU time over the run

    def summary(self) -> dict[str, Any]:
        values = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        p50, p99 = np.percentile(values, [50, 99])
        answered = len(self.latencies_ms) + sum(self.errors.values())
        return {
            "endpoint": self.endpoint,
            "clients": self.clients,
            "requests": len(self.latencies_ms),
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "p50_ms": round(float(p50), 2),
            "p99_ms": round(float(p99), 2),
            "mean_ms": round(float(values.mean()), 2),
            "req_per_s": round(len(self.latencies_ms) / self.seconds, 1) if self.seconds else 0.0,
            "server_cpu_ms": round(1000 * self.server_cpu_s / max(1, answered), 2),
        }


@dataclass
class Library:
    """A built data directory: the key to use, the targets, one component's vectors."""

    data_dir: Path
    secret: str
    target_ids: list[int]
    sample: np.ndarray  # (size, dim): the library's textemb vectors, for FAISS vs NumPy
    build_s: float


# ---------------------------------------------------------------------------------------------
# The library


def packaged_layout() -> Layout:
    """The packaged MiniLM's components: each layer's attention output and output, CLS; means."""
    from workers.encoder import resolve_encoder

    ref = resolve_encoder(None)
    config = json.loads((Path(ref.path) / "config.json").read_text())
    layers = int(config["num_hidden_layers"])
    taskemb = [f"layer{i}.{part}" for i in range(layers) for part in ("attention", "output")]
    return Layout(
        model=Settings.model_fields["model"].default,
        encoder_id=ref.id,
        encoder_name=ref.name,
        revision=ref.revision,
        dim=int(config["hidden_size"]),
        components={"taskemb": [*taskemb, "cls"], "textemb": ["mean"], "semb": ["mean"]},
    )


def build_library(
    data_dir: Path, size: int, layout: Layout, config: BenchConfig, extra: dict | None = None
) -> Library:
    """Migrate, issue a key, insert ``size`` library tasks + targets, write the FAISS files;
    ``extra`` settings (a ``database_url``, say) as the server will have them."""
    started = time.perf_counter()
    settings = bench_settings(data_dir, config.exact_max, extra)
    seed = config.seed
    upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    rng = np.random.default_rng(seed)
    with unit_of_work(factory) as session:
        client = issue_key(session, "bench")  # an ordinary owner: sees its targets + the library
        librarian = issue_key(session, "librarian", admin=True)
    secret, owner, library_owner = client.secret, client.key.owner_id, librarian.key.owner_id
    library_ids = list(range(1, size + 1))
    target_ids = list(range(size + 1, size + 1 + TARGETS))
    insert_tasks(factory, library_ids, library_owner, is_library=True)
    insert_tasks(factory, target_ids, owner, is_library=False)
    with unit_of_work(factory) as session:
        _, version = library.bump(session, layout.encoder_id)
    indexes = IndexStore(
        settings.index_dir, exact_max=settings.index_exact_max, nprobe=settings.index_nprobe
    )
    tasks = {i: (f"lib{i:06d}", TASK_TYPES[i % len(TASK_TYPES)]) for i in library_ids}
    sample = None
    for method, component in layout.vectors():
        matrix = synthetic_vectors(rng, len(library_ids) + TARGETS, layout.dim, method)
        insert_vectors(factory, layout, method, component, [*library_ids, *target_ids], matrix)
        key = (layout.encoder_id, method, component)
        indexes.rebuild(key, version, library_ids, [matrix[:size]], tasks, layout.dim)
        if method == "textemb":
            sample = matrix[:size]
    engine.dispose()
    return Library(data_dir, secret, target_ids, sample, time.perf_counter() - started)


def synthetic_vectors(rng: np.random.Generator, rows: int, dim: int, method: str) -> np.ndarray:
    """Random vectors: non-negative for TaskEmb (a Fisher diagonal is), Gaussian otherwise."""
    matrix = rng.standard_normal((rows, dim), dtype=np.float32)  # (rows, dim)
    return np.abs(matrix) if method == "taskemb" else matrix


def insert_tasks(factory, ids: list[int], owner_id: int, *, is_library: bool) -> None:
    """Task rows with explicit ids, in batches (core executemany, no ORM objects)."""
    prefix = "lib" if is_library else "target"
    for start in range(0, len(ids), BATCH_ROWS):
        rows = [
            {
                "id": i,
                "owner_id": owner_id,
                "name": f"{prefix}{i:06d}",
                "type": TASK_TYPES[i % len(TASK_TYPES)],
                "metric": "accuracy",
                "labels": [],
                "manifest": {},
                "source": TaskSource.ROWS,
                "content_hash": f"{i:064x}",
                "counts": {"train": 1000},
                "label_distribution": {},
                "status": TaskStatus.READY,
                "is_library": is_library,
            }
            for i in ids[start : start + BATCH_ROWS]
        ]
        with unit_of_work(factory) as session:
            session.execute(insert(Task.__table__), rows)


def insert_vectors(factory, layout: Layout, method: str, component: str, ids, matrix) -> None:
    """One component's vector for every task in ``ids`` (row ``i`` of ``matrix``)."""
    statement = insert(Embedding.__table__).values(  # what every row of the batch shares
        model=layout.model,
        encoder_id=layout.encoder_id,
        encoder_name=layout.encoder_name,
        model_revision=layout.revision,
        method=method,
        component=component,
        dim=layout.dim,
        num_examples=1000,
        settings={},
        created_at=utcnow(),
    )
    for start in range(0, len(ids), BATCH_ROWS):
        rows = [
            {"task_id": task_id, "vector": to_blob(matrix[start + offset])}
            for offset, task_id in enumerate(ids[start : start + BATCH_ROWS])
        ]
        with unit_of_work(factory) as session:
            session.execute(statement, rows)


def bench_settings(data_dir: Path, exact_max: int, extra: dict | None = None) -> Settings:
    return Settings(_env_file=None, **server_values(data_dir, exact_max, extra))


def server_values(data_dir: Path, exact_max: int, extra: dict | None = None) -> dict[str, Any]:
    """The server's settings: embedded defaults under ``data_dir``, no rate limit (``extra``
    overrides)."""
    return {
        "data_dir": data_dir,
        "index_exact_max": exact_max,
        "tasks_root": data_dir / "no-library",
        "rate_limit_per_minute": 0,
        "register_library_on_start": False,
        "embedded_workers": 1,
        **(extra or {}),
    }


# ---------------------------------------------------------------------------------------------
# FAISS against NumPy


def compare_search(
    matrix: np.ndarray, queries: np.ndarray, depth: int, threads: int = 1
) -> dict[str, Any]:
    """Mean ms per single-query top-``depth`` search: FAISS flat IP and a NumPy scan.

    Both on ``threads`` threads (the service searches on one per request, ``search_threads``).
    """
    from threadpoolctl import threadpool_limits

    vectors = normalised(matrix)  # (n, dim)
    queries = normalised(queries)  # (q, dim)
    depth = min(depth, len(vectors))
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    index.add_with_ids(vectors, np.arange(len(vectors), dtype="int64"))

    def with_faiss(query: np.ndarray) -> np.ndarray:
        return index.search(query.reshape(1, -1), depth)[1][0]

    def with_numpy(query: np.ndarray) -> np.ndarray:
        scores = vectors @ query  # (n,)
        top = np.argpartition(-scores, depth - 1)[:depth]
        return top[np.argsort(-scores[top], kind="stable")]

    ivf = new_index(vectors, exact_max=0)  # the service's inverted file, whatever the size
    ivf.add_with_ids(vectors, np.arange(len(vectors), dtype="int64"))
    ivf_params = faiss.SearchParametersIVF(nprobe=NPROBE)

    def with_ivf(query: np.ndarray) -> np.ndarray:
        return ivf.search(query.reshape(1, -1), depth, params=ivf_params)[1][0]

    faiss_ms, found = _time_each(with_faiss, queries)
    ivf_ms, approximate = _time_each(with_ivf, queries)
    with threadpool_limits(threads):
        numpy_ms, expected = _time_each(with_numpy, queries)
    overlap = np.mean([len(set(a) & set(b)) / depth for a, b in zip(found, expected, strict=True)])
    recall = np.mean(
        [len(set(a) & set(b)) / depth for a, b in zip(approximate, expected, strict=True)]
    )
    return {
        "ivf_ms": round(ivf_ms, 3),
        "ivf_recall": round(float(recall), 4),
        "numpy_over_ivf": round(numpy_ms / ivf_ms, 2),
        "vectors": len(vectors),
        "dim": int(vectors.shape[1]),
        "depth": depth,
        "queries": len(queries),
        "threads": threads,
        "faiss_ms": round(faiss_ms, 3),
        "numpy_ms": round(numpy_ms, 3),
        "numpy_over_faiss": round(numpy_ms / faiss_ms, 2),
        "same_results": round(float(overlap), 4),
    }


def _time_each(search, queries: np.ndarray) -> tuple[float, list[np.ndarray]]:
    search(queries[0])  # warm-up
    results = []
    started = time.perf_counter()
    for query in queries:
        results.append(search(query))
    return 1000 * (time.perf_counter() - started) / len(queries), results


# ---------------------------------------------------------------------------------------------
# The server and the clients


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the server and its worker processes have used
        so far."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended while we looked
            if stat.parent.name == str(self.pid) or int(fields[1]) == self.pid:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(
    data_dir: Path, exact_max: int, *, cache: bool, workers: int = 1, extra: dict | None = None
) -> Iterator[Server]:
    """``uvicorn service.app:create_app`` on a free loopback port, embedded worker, no limit;
    ``cache=False`` turns the rankings cache off, so every request searches the indexes."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKREC_")}
    values = server_values(data_dir, exact_max, extra)
    if not cache:
        values["recommend_cache_size"] = 0
    for name, value in values.items():
        env[f"TASKREC_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    command += ["--workers", str(workers)] if workers > 1 else []
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        # cwd: the data directory, so no .env of the checkout is read
        process = subprocess.Popen(command, cwd=data_dir, env=env, stdout=log, stderr=log)
        try:
            server = Server(f"http://127.0.0.1:{port}", process.pid)
            wait_ready(server.url, process, log_path)
            yield server
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGINT, as Ctrl-C would stop the server, then kill it if it lingers past 30 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited ({process.returncode}):\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"uvicorn not ready after {timeout} s:\n{log_path.read_text()}")


async def drive(
    server: Server, headers: dict, paths: list[str], clients: int, max_requests: int, max_s: float
) -> Run:
    """``clients`` closed-loop clients share ``max_requests``; none starts one after ``max_s``.

    Each client has its own ``AsyncClient`` and keep-alive connection, opened before the clock
    starts (one pool shared by 50 connections costs httpx about 3x the CPU per request, and the
    client shares the machine with the server).
    """
    run = Run(endpoint=paths[0].split("?")[0], clients=clients)
    issued = iter(range(max_requests))
    tls = httpx.create_ssl_context()  # unused on loopback HTTP, but each client would build one
    async with AsyncExitStack() as stack:
        https = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=server.url, headers=headers, timeout=600, verify=tls)
            )
            for _ in range(clients)
        ]
        await asyncio.gather(*(http.get("/healthz") for http in https))  # connect, untimed
        deadline = time.perf_counter() + max_s

        async def client(http: httpx.AsyncClient, number: int) -> None:
            for sent in issued:
                if time.perf_counter() > deadline:
                    return
                begin = time.perf_counter()
                try:
                    response = await http.get(paths[(number + sent) % len(paths)])
                    code = str(response.status_code)
                except httpx.TransportError as exc:  # e.g. a connection the server dropped
                    code = type(exc).__name__
                if code == "200":
                    run.latencies_ms.append(1000 * (time.perf_counter() - begin))
                else:
                    run.errors[code] = run.errors.get(code, 0) + 1

        started, cpu = time.perf_counter(), server.cpu_seconds()
        await asyncio.gather(*(client(http, n) for n, http in enumerate(https)))
        run.seconds = time.perf_counter() - started
        run.server_cpu_s = server.cpu_seconds() - cpu
    return run


def load(server: Server, headers: dict, paths: list[str], clients: int, config: BenchConfig):
    """One bounded run; its summary with the server's CPU ms per answered request."""
    max_requests = config.max_requests if clients > 1 else config.serial_requests
    run = asyncio.run(drive(server, headers, paths, clients, max_requests, config.max_seconds))
    return run.summary()


def measure_size(
    lib: Library, config: BenchConfig, server: Server, *, serial: bool = True
) -> dict[str, Any]:
    """Cold first request, then per method: one client (if ``serial``), then ``config.clients``
    clients."""
    headers = {"Authorization": f"Bearer {lib.secret}"}
    paths = {
        m: [f"/v1/tasks/{t}/recommendations?k={config.k}&method={m}" for t in lib.target_ids]
        for m in config.methods
    }
    cold = {}
    for method, method_paths in paths.items():  # the first search loads the index files
        begin = time.perf_counter()
        response = httpx.get(f"{server.url}{method_paths[0]}", headers=headers, timeout=600)
        response.raise_for_status()
        cold[method] = round(time.perf_counter() - begin, 2)
    if not serial:  # the cached server's steady state: every target asked once, untimed
        for method_paths in paths.values():
            for path in method_paths:
                httpx.get(f"{server.url}{path}", headers=headers, timeout=600).raise_for_status()
    runs = {}
    for method, method_paths in paths.items():
        runs[method] = {"serial": load(server, headers, method_paths, 1, config)} if serial else {}
        runs[method]["concurrent"] = load(server, headers, method_paths, config.clients, config)
        console.log(f"{method}: {runs[method]}")
    return {"cold_first_request_s": cold, "runs": runs}


def measure_floor(lib: Library, config: BenchConfig, server: Server) -> dict[str, Any]:
    """The HTTP stack alone: ``/healthz`` (no auth) and ``/v1/me`` (key check, one query)."""
    headers = {"Authorization": f"Bearer {lib.secret}"}
    return {
        path: load(server, headers, [path], config.clients, config)
        for path in ("/healthz", "/v1/me")
    }


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "faiss": faiss.__version__,
        "load_average": os.getloadavg(),
    }


def report_table(results: dict[str, Any], clients: int) -> Table:
    table = Table(title=f"GET /v1/tasks/{{id}}/recommendations — 1 and {clients} clients")
    columns = ("library", "method", "cache", "clients", "requests", "p50 ms", "p99 ms", "req/s")
    for column in (*columns, "server CPU ms/req"):
        table.add_column(column, justify="left" if column in ("method", "cache") else "right")
    for size, result in results["sizes"].items():
        for method, runs in result["runs"].items():
            for run in (runs["serial"], runs["concurrent"]):
                table.add_row(f"{int(size):,}", method, "off", *_cells(run))
            cached = result["cached_runs"][method]["concurrent"]
            table.add_row(f"{int(size):,}", method, "on", *_cells(cached))
    for path, run in results["floor"].items():
        table.add_row("-", path, "-", *_cells(run))
    return table


def _cells(run: dict[str, Any]) -> list[str]:
    errors = sum(run["errors"].values())
    requests = f"{run['requests']}" + (f" (+{errors} errors)" if errors else "")
    return [
        str(run["clients"]),
        requests,
        f"{run['p50_ms']:.1f}",
        f"{run['p99_ms']:.1f}",
        f"{run['req_per_s']:.1f}",
        f"{run['server_cpu_ms']:.1f}",
    ]


def search_table(results: dict[str, Any]) -> Table:
    table = Table(title="One component's top-k search, one query, one thread (mean ms)")
    columns = ("library", "k", "FAISS flat ms", "NumPy ms", "NumPy / flat", "same top-k")
    for column in (*columns, "FAISS IVF ms", "NumPy / IVF", "IVF recall"):
        table.add_column(column, justify="right")
    for size, result in results["sizes"].items():
        for s in result["search"]:
            table.add_row(
                f"{int(size):,}",
                str(s["depth"]),
                f"{s['faiss_ms']:.2f}",
                f"{s['numpy_ms']:.2f}",
                f"{s['numpy_over_faiss']:.2f}x",
                f"{100 * s['same_results']:.1f}%",
                f"{s['ivf_ms']:.2f}",
                f"{s['numpy_over_ivf']:.2f}x",
                f"{100 * s['ivf_recall']:.1f}%",
            )
    return table


def verdict(results: dict[str, Any]) -> str:
    big = results["sizes"].get(str(TARGET_SIZE))
    if big is None:
        return f"target: p99 < {TARGET_P99_MS:.0f} ms at {TARGET_SIZE:,} (not measured: --sizes)"
    parts = []
    for cache, runs in (("cache off", big["runs"]), ("cache on", big["cached_runs"])):
        worst = max(r["concurrent"]["p99_ms"] for r in runs.values())
        met = "met" if worst < TARGET_P99_MS else "MISSED"
        parts.append(f"{cache}: {met} (worst {worst:.0f} ms)")
    return f"target p99 < {TARGET_P99_MS:.0f} ms at {TARGET_SIZE:,}: " + "; ".join(parts)


# ---------------------------------------------------------------------------------------------


def run_size(size: int, layout: Layout, config: BenchConfig, root: Path) -> dict[str, Any]:
    console.log(f"building a library of {size:,} tasks ...")
    lib = build_library(root / f"lib{size}", size, layout, config)
    console.log(f"built in {lib.build_s:.1f} s; FAISS vs NumPy ...")
    queries = np.random.default_rng(config.seed + 1).standard_normal((50, layout.dim), "float32")
    search = [compare_search(lib.sample, queries, depth) for depth in (config.k, DEPTH)]
    lib.sample = None  # the server needs the memory more
    with serving(
        lib.data_dir, config.exact_max, cache=False, workers=config.workers
    ) as server:  # every request searches
        result = measure_size(lib, config, server)
        floor = measure_floor(lib, config, server) if size == config.sizes[0] else None
    with serving(
        lib.data_dir, config.exact_max, cache=True
    ) as server:  # the default: repeats come from memory
        cached = measure_size(lib, config, server, serial=False)
    recall = ranking_recall(lib, config)
    console.log(f"top-{config.k} overlap with exact search: {recall}")
    return {
        "build_s": round(lib.build_s, 1),
        "search": search,
        **result,
        "cached_runs": cached["runs"],
        "ranking_recall": recall,
        "floor": floor,
    }


def ranking_recall(lib: Library, config: BenchConfig) -> dict[str, float]:
    """Share of the service's top-k (inverted files above ``index_exact_max``) that an exact
    search of every component puts in its top-k too, per method, over the bench's targets."""
    from service.context import build_context
    from service.recommendations.service import recommend

    settings = bench_settings(lib.data_dir, config.exact_max)
    settings = settings.model_copy(update={"recommend_cache_size": 0})
    served = build_context(settings)
    exact_root = Path(tempfile.mkdtemp(prefix="exact-", dir=lib.data_dir))
    exact = replace(served, indexes=IndexStore(exact_root, exact_max=2**62))
    overlap: dict[str, list[float]] = {m: [] for m in config.methods}
    try:
        for method in config.methods:
            for target_id in lib.target_ids[:RECALL_TARGETS]:
                with unit_of_work(served.session_factory) as session:
                    target = session.get(Task, target_id)
                    got, want = (
                        {
                            r.task_id
                            for r in recommend(
                                session, c, target, k=config.k, method=method
                            ).ranking
                        }
                        for c in (served, exact)
                    )
                overlap[method].append(len(got & want) / config.k)
    finally:
        served.close()
    return {m: round(float(np.mean(v)), 4) for m, v in overlap.items()}


@app.command()
def main(
    sizes: str = typer.Option("1000,100000", help="Comma-separated library sizes (tasks)."),
    methods: str = typer.Option("textemb,taskemb,fused", help="Comma-separated methods."),
    clients: int = typer.Option(50, help="Concurrent clients."),
    requests: int | None = typer.Option(None, help="Requests per run (default 2000; quick 200)."),
    seconds: float | None = typer.Option(None, help="Seconds per run at most (30; quick 8)."),
    quick: bool = typer.Option(False, help="Libraries of 1,000 and 10,000, short runs."),
    keep: bool = typer.Option(False, help="Keep the data directories (printed)."),
    workers: int = typer.Option(1, help="Server processes (taskrec serve --workers)."),
    exact_max: int = typer.Option(
        BenchConfig.exact_max, help="TASKREC_INDEX_EXACT_MAX: larger libraries are served by IVF."
    ),
    out: Path = typer.Option(DEFAULT_OUT, help="Where the JSON results go."),
) -> None:
    """Benchmark recommendations against a real uvicorn server."""
    config = BenchConfig(
        sizes=(1000, 10_000) if quick and sizes == "1000,100000" else _ints(sizes),
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        clients=clients,
        max_requests=requests or (200 if quick else 2000),
        max_seconds=seconds or (8.0 if quick else 30.0),
        serial_requests=20 if quick else 50,
        exact_max=exact_max,
        workers=workers,
    )
    layout = packaged_layout()
    root = Path(tempfile.mkdtemp(prefix="taskrec-bench-"))
    console.log(f"encoder {layout.encoder_id}; data under {root}")
    results: dict[str, Any] = {"sizes": {}, "floor": {}}
    info = machine()
    try:
        for size in config.sizes:
            result = run_size(size, layout, config, root)
            results["floor"] = result.pop("floor") or results["floor"]
            results["sizes"][str(size)] = result
    finally:
        if not keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    info["load_average_after"] = os.getloadavg()
    console.print(report_table(results, config.clients))
    console.print(search_table(results))
    console.print(verdict(results))
    payload = {
        "config": asdict(config),
        "encoder_id": layout.encoder_id,
        "components": layout.components,
        "dim": layout.dim,
        "depth": DEPTH,
        "machine": info,
        "verdict": verdict(results),
        **results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str))
    console.log(f"wrote {out}")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())


if __name__ == "__main__":
    app()
