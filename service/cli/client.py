"""Client commands that call a taskrec server: ``library`` (add, list, train-adapters),
``submit``, ``recommend``, ``jobs`` and ``transfers``. The server and key come from
``--server``/``--key`` or ``TASKREC_SERVER``/``TASKREC_API_KEY``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from service.cli.common import (
    JsonOption,
    fail,
    print_json,
    progress_bars,
    stdout,
    top_components,
)
from service.models.job import JobKind, JobState
from service.transfers.schemas import REGIMES, STRATEGIES
from workers.selection.methods import SERVED

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="TASKREC_SERVER",
        help="Base URL of the taskrec server (default: http://TASKREC_HOST:TASKREC_PORT, as "
        "`taskrec serve` listens).",
        show_default=False,
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="TASKREC_API_KEY",
        help="API key (Authorization: Bearer).",
        show_default=False,
    ),
]
# Choices from the registries the server validates against: listed in --help, checked here.
MethodChoice = StrEnum("MethodChoice", {name: name for name in SERVED})
StrategyChoice = StrEnum("StrategyChoice", {name: name for name in STRATEGIES})
RegimeChoice = StrEnum("RegimeChoice", {name: name for name in REGIMES})
StateChoice = StrEnum("StateChoice", {name: name for name in JobState.ALL})
KindChoice = StrEnum("KindChoice", {name: name for name in JobKind.QUEUES})
WaitOption = Annotated[bool, typer.Option("--wait", help="Follow the jobs until they finish.")]
TaskIdsOption = Annotated[
    list[int], typer.Option("--task", help="A library task id (repeatable; default: every one).")
]
FINAL = ("succeeded", "failed", "cancelled")


def register(app: typer.Typer) -> None:
    """Add the client commands to ``app``."""
    library = typer.Typer(help="The server's shared task library.", no_args_is_help=True)
    library.command("add")(library_add)
    library.command("list")(library_list)
    library.command("train-adapters")(library_train_adapters)
    app.add_typer(library, name="library")
    app.command()(submit)
    app.command()(recommend)
    app.command()(jobs)
    transfers = typer.Typer(
        help="Transfer runs on the server (fine-tuning jobs).", no_args_is_help=True
    )
    transfers.command("start")(transfer_start)
    transfers.command("show")(transfer_show)
    app.add_typer(transfers, name="transfers")


def _local_server() -> str:
    """Where `taskrec serve` listens by the settings (a wildcard host is reached on loopback)."""
    from service.settings import get_settings

    settings = get_settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


class Api:
    """A thin HTTP client: error bodies become one-line CLI errors."""

    def __init__(self, server: str, key: str | None) -> None:
        if not key:
            fail("no API key: pass --key or set TASKREC_API_KEY (see `taskrec keys create`)")
        self.client = httpx.Client(
            base_url=(server or _local_server()).rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )

    def request(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            fail(f"cannot reach {self.client.base_url}: {error}")
        if response.status_code >= 400:
            fail(_error_line(response))
        return response.json() if response.content else None

    def wait(self, job_ids: list[int], show: bool) -> dict[int, dict]:
        """Follow each job's event stream (SSE: the server pushes each change) to its end, one
        job after another, drawing a progress bar per job with its stage, place and time left."""
        done: dict[int, dict] = {}
        with progress_bars(show) as progress:
            for job_id in job_ids:
                for job in self._events(job_id):
                    label = f"job {job_id} ({job['kind']})"
                    progress(label, int(job["progress"]), 100)
                    progress.describe(label, _job_words(job))
                    done[job_id] = job
                if done.get(job_id, {}).get("state") not in FINAL:  # the stream broke off
                    done[job_id] = self.request("GET", f"/v1/jobs/{job_id}")
        return done

    def _events(self, job_id: int) -> Iterator[dict]:
        """The job as each ``progress`` event of its stream carries it, until ``end``."""
        from httpx_sse import connect_sse

        try:
            with connect_sse(self.client, "GET", f"/v1/jobs/{job_id}/events") as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    fail(_error_line(source.response))
                for event in source.iter_sse():
                    if event.event == "end":
                        return
                    if event.event == "progress":
                        yield event.json()
        except httpx.HTTPError as error:
            fail(f"lost the event stream of job {job_id}: {error}")


def _job_words(job: dict) -> str:
    """Where a job is: its place in the queue, or its stage and time left."""
    if job["state"] == "queued" and job.get("queue_position"):
        return f"queued, {job['queue_position']} in line"
    eta = (job.get("timings") or {}).get("eta_s")
    stage = (job.get("stage") or "").split(":")[0]
    left = f", ~{eta:.0f} s left" if eta is not None else ""
    return f"{job['state']} {stage}{left}".strip()


def _error_line(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    message = body.get("message") or body
    problems = body.get("problems") or []
    if problems:
        first = problems[0]
        where = ":".join(str(p) for p in (first.get("file"), first.get("row")) if p)
        where = f"{where}: " if where else ""
        field = f"{first['field']}: " if first.get("field") else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = f"{message} — {where}{field}{first['message']}{more}"
    return f"{message} (HTTP {response.status_code})"


@contextmanager
def _api(server: str, key: str | None) -> Iterator[Api]:
    api = Api(server, key)
    try:
        yield api
    finally:
        api.client.close()


def library_add(
    folders: Annotated[list[Path], typer.Argument(help="Task folders, or folders of them.")],
    wait: WaitOption = False,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Register task folders (paths the server can read, under its library roots)."""
    with _api(server, key) as api:
        tasks = []
        for folder in folders:
            body = {"path": str(folder.expanduser().resolve())}
            tasks += api.request("POST", "/v1/library/folders", json=body)
        if wait:
            jobs = [t["embedding"]["job_id"] for t in tasks if t["embedding"]["job_id"]]
            api.wait(jobs, show=not as_json)
            tasks = [api.request("GET", f"/v1/tasks/{t['id']}") for t in tasks]
    rows = [{"task_id": t["id"], "name": t["name"], "status": t["status"]} for t in tasks]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        stdout.print(f"{row['task_id']:>6}  {row['name']}  {row['status']}")


def library_list(
    as_json: JsonOption = False, server: ServerOption = None, key: KeyOption = None
) -> None:
    """List the library's tasks with their embedding state."""
    with _api(server, key) as api:
        page = api.request("GET", "/v1/library", params={"limit": 500})
    if as_json:
        print_json(page)
        return
    table = Table("id", "task", "type", "train rows", "embeddings")
    for task in page["items"]:
        table.add_row(
            str(task["id"]),
            task["name"],
            task["type"],
            str(task["counts"].get("train", 0)),
            task["embedding"]["state"],
        )
    stdout.print(table)


def library_train_adapters(
    task_ids: TaskIdsOption = [],  # noqa: B006 (Typer reads the default list)
    wait: WaitOption = False,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Train library tasks' adapters ahead of their first adapter transfer (admins): one
    backfill job, below owners' jobs; adapters already stored are skipped."""
    body = {"task_ids": task_ids} if task_ids else {}
    with _api(server, key) as api:
        job = api.request("POST", "/v1/adapters/backfill", json=body)
        if wait:
            job = api.wait([job["id"]], show=not as_json)[job["id"]]
    if as_json:
        print_json(job)
        return
    stdout.print(f"job {job['id']} ({job['kind']}): {_job_words(job)}")


def submit(
    folder: Annotated[
        Path, typer.Argument(help="A task folder: task.json + train.jsonl (+ validation.jsonl).")
    ],
    wait: WaitOption = False,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Upload a task folder; with --json prints {"task_id": ..., "status": ...}."""
    manifest_path = folder / "task.json"
    if not manifest_path.is_file():
        fail(f"no task.json in {folder}")
    manifest = json.loads(manifest_path.read_text())
    data = {k: manifest[k] for k in ("name", "type", "metric") if manifest.get(k)}
    if manifest.get("labels"):
        data["labels"] = ",".join(manifest["labels"])
    with _api(server, key) as api, _split_files(folder) as files:
        task = api.request("POST", "/v1/tasks", data=data, files=files)
        if wait and task["embedding"]["job_id"]:
            api.wait([task["embedding"]["job_id"]], show=not as_json)
            task = api.request("GET", f"/v1/tasks/{task['id']}")
    if as_json:
        print_json({"task_id": task["id"], "status": task["status"]})
        return
    stdout.print(f"task {task['id']} ({task['name']}): {task['status']}")


@contextmanager
def _split_files(folder: Path):
    handles = {}
    try:
        for split in ("train", "validation"):
            path = folder / f"{split}.jsonl"
            if path.is_file():
                handles[split] = (path.name, path.open("rb"), "application/jsonl")
        if "train" not in handles:
            fail(f"no train.jsonl in {folder}")
        yield handles
    finally:
        for _, handle, _ in handles.values():
            handle.close()


def recommend(
    task_id: Annotated[int, typer.Argument(help="A task id (yours or the library's).")],
    k: Annotated[int, typer.Option("--k", help="How many library tasks.")] = 10,
    method: Annotated[
        MethodChoice | None,
        typer.Option(help="Default: the server's default."),
    ] = None,
    task_type: Annotated[
        str | None, typer.Option("--type", help="Only library tasks of this type.")
    ] = None,
    transfer_model: Annotated[
        str | None,
        typer.Option(
            "--transfer-model",
            help="The model you will fine-tune (default: the server's); learned ranks with its "
            "measured transfers.",
        ),
    ] = None,
    evidence_sets: Annotated[
        list[str],
        typer.Option("--evidence-set", help="Evidence sets to rank with (repeatable)."),
    ] = [],  # noqa: B006 (Typer reads the default list)
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """The nearest library tasks (409 from the server until the task is embedded)."""
    params: dict[str, Any] = {
        "k": k,
        **({"method": method} if method else {}),
        **({"type": task_type} if task_type else {}),
        **({"transfer_model": transfer_model} if transfer_model else {}),
        **({"evidence_set": evidence_sets} if evidence_sets else {}),
    }
    with _api(server, key) as api:
        body = api.request("GET", f"/v1/tasks/{task_id}/recommendations", params=params)
    ranking = [
        {"task": r["task"], "score": r["score"], "components": r["components"]}
        for r in body["ranking"]
    ]
    if as_json:  # `taskrec similar --json`'s shape, plus what the server says of its evidence
        print_json(
            {
                "target": body["task"],
                "method": body["method"],
                "model": body["encoder_id"],
                "ranking": ranking,
                "library": body["library"],
                "transfer_model": body.get("transfer_model"),
                "evidence": body.get("evidence"),
                "evaluation": body.get("evaluation") or {},
                "note": body.get("note"),
            }
        )
        return
    table = Table(
        "rank",
        "task",
        "score",
        "top components",
        title=f"{body['task']} — {body['method']} — {body['encoder_id']}",
    )
    for rank, item in enumerate(ranking, 1):
        table.add_row(
            str(rank), item["task"], f"{item['score']:.4f}", top_components(item["components"])
        )
    stdout.print(table)
    if body.get("note"):
        stdout.print(body["note"])


def jobs(
    job_id: Annotated[int | None, typer.Argument(help="Show (or follow) one job.")] = None,
    cancel: Annotated[
        bool,
        typer.Option(
            "--cancel",
            help="Cancel JOB_ID; without one, every active job of yours (of --state, --kind; an "
            "admin's key: anyone's).",
        ),
    ] = False,
    wait: WaitOption = False,
    state: Annotated[StateChoice | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[KindChoice | None, typer.Option(help="Only jobs of this kind.")] = None,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """List your jobs, or show, follow or cancel one (or all)."""
    filters = {k: v for k, v in (("state", state), ("kind", kind)) if v}
    with _api(server, key) as api:
        if job_id is None and cancel:
            items = api.request("POST", "/v1/jobs/cancel", params=filters)["items"]
        elif job_id is None:
            items = api.request("GET", "/v1/jobs", params={"limit": 100, **filters})["items"]
        elif cancel:
            items = [api.request("POST", f"/v1/jobs/{job_id}/cancel")]
        elif wait:
            items = list(api.wait([job_id], show=not as_json).values())
        else:
            items = [api.request("GET", f"/v1/jobs/{job_id}")]
    if as_json:
        print_json(items if job_id is None else items[0])
        return
    table = Table("id", "kind", "state", "progress", "where", "task", "error")
    for job in items:
        table.add_row(
            str(job["id"]),
            job["kind"],
            job["state"],
            f"{job['progress']:.0f}%",
            _job_words(job),
            str(job["task_id"] or ""),
            (job["error"] or "")[:60],
        )
    stdout.print(table)


def transfer_start(
    target: Annotated[int, typer.Option(help="Target task id.")],
    sources: Annotated[
        str, typer.Option(help="Comma-separated source task ids, or 'auto'.")
    ] = "auto",
    k: Annotated[int, typer.Option("--k", help="Sources 'auto' picks.")] = 1,
    strategy: Annotated[StrategyChoice, typer.Option(help="How sources train.")] = "sequential",
    regime: Annotated[RegimeChoice, typer.Option(help="Target training size.")] = "limited",
    method: Annotated[
        MethodChoice | None,
        typer.Option(
            help="How 'auto' ranks sources (default: as recommend does; the run records it)."
        ),
    ] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0",
    epochs: Annotated[float, typer.Option(help="Epochs per stage.")] = 3.0,
    wait: WaitOption = False,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Start a transfer run on the server (a job on its finetune queue)."""
    chosen: Any = "auto" if sources == "auto" else [int(s) for s in sources.split(",") if s]
    train = {"epochs": epochs}
    body = {
        "target_task_id": target,
        "sources": chosen,
        "k": k,
        "strategy": strategy,
        "regime": regime,
        **({"method": method} if method else {}),
        "seeds": [int(s) for s in seeds.split(",") if s],
        "source_train": train,
        "target_train": train,
    }
    with _api(server, key) as api:
        run = api.request("POST", "/v1/transfers", json=body)
        if wait:
            api.wait([run["job_id"]], show=not as_json)
            run = api.request("GET", f"/v1/transfers/{run['id']}")
    _show_transfer(run, as_json)


def transfer_show(
    run_id: Annotated[int, typer.Argument(help="Transfer run id.")],
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """A transfer run: state, and once done the baseline, transfer and gain (mean ± std)."""
    with _api(server, key) as api:
        _show_transfer(api.request("GET", f"/v1/transfers/{run_id}"), as_json)


def _show_transfer(run: dict, as_json: bool) -> None:
    if as_json:
        print_json(run)
        return
    sources = ", ".join(s["name"] for s in run["sources"])
    route = f"{sources} → {run['target']['name']} ({run['strategy']})"
    stdout.print(f"transfer {run['id']}: {route} — {run['state']}")
    result = run.get("result")
    if result:
        for name in ("baseline", "transfer", "gain"):
            summary = result[name]
            stdout.print(
                f"  {name:<8} {summary['mean']:8.2f} ± {summary['std']:.2f}  ({result['metric']})"
            )
        cost = result.get("cost")
        if cost:
            peak = f", peak {cost['peak_memory_mb']:.0f} MB" if cost["peak_memory_mb"] else ""
            stdout.print(
                f"  cost     {cost['seconds']:.0f} s on {cost['examples']} examples{peak}: "
                f"{cost['gain_per_hour']:+.2f} points an hour (baseline stages not counted)"
            )
