"""Memory of a large upload and of its embedding job, measured on a real server process.

    python -m bench.memory [--mb 100] [--max-examples 256]

Starts ``uvicorn service.app:create_app`` (SQLite, embedded worker, the packaged MiniLM) and
reads the server's peak resident memory (``VmHWM`` in ``/proc/PID/status``) at each step:

1. without job workers (``TASKREC_EMBEDDED_WORKERS=0``, the API alone): after a small upload,
   then after a ``--mb`` MB JSONL training file (classification rows of ~110 bytes, up to the
   row limit) was uploaded as multipart, streamed from disk by the client;
2. restarted with one embedded worker: after the small task's job ran (torch, the encoder and
   every code path loaded: the fixed cost any worker pays once), then after the large task's
   embedding job ran.

Targets (issue 14): the upload adds < 300 MB to the API process, and the job adds < 300 MB over
the warm server. A 10 MB single text row is refused (422) before it costs anything: it is over
``TASKREC_MAX_TEXT_CHARS``. Results: a Rich table, and JSON in ``bench/out/memory.json``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from bench.recommend import BenchConfig, build_library, machine, packaged_layout, serving

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "memory.json"
TARGET_MB = 300
ROW_BYTES = 110

console = Console()
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(
    mb: int = typer.Option(100, help="Size of the uploaded training file, MB."),
    max_examples: int = typer.Option(256, help="Examples the embedding job embeds."),
    out: Path = typer.Option(DEFAULT_OUT, help="Where the JSON goes."),
) -> None:
    """Upload a large task to a real server, embed it, and report peak memory at each step."""
    with tempfile.TemporaryDirectory(prefix="taskrec-memory-") as folder:
        result = run(Path(folder), mb, max_examples)
    result["machine"] = machine()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(_table(result))
    passed = result["upload_added_mb"] < TARGET_MB and result["job_added_mb"] < TARGET_MB
    console.print("[green]passed[/green]" if passed else "[red]FAILED[/red]")
    raise typer.Exit(0 if passed else 1)


def run(folder: Path, mb: int, max_examples: int) -> dict[str, Any]:
    """Two server runs on one data folder: without job workers (the upload alone), then with
    one (the job, after a small job warmed the process)."""
    config = BenchConfig((1,), ("fused",), 1, 1, 60.0, 1)
    lib = build_library(folder, 1, packaged_layout(), config)
    train = folder / "train.jsonl"
    rows = _write_rows(train, mb * 1024 * 1024)
    extra = {"max_examples": max_examples, "torch_threads": 1}
    headers = {"Authorization": f"Bearer {lib.secret}"}
    api_only = extra | {"embedded_workers": 0}
    with (
        serving(folder, config.exact_max, cache=True, extra=api_only) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=600) as client,
    ):
        small = _upload(client, "small", _small_file(folder))[1]
        api_warm = _peak_mb(server.pid)
        t0 = time.perf_counter()
        large_task, large_job = _upload(client, "large", train)
        upload_s = time.perf_counter() - t0
        api_upload = _peak_mb(server.pid)
        client.post(f"/v1/jobs/{large_job}/cancel").raise_for_status()
        long_row = _long_row_status(client, folder)
    with (
        serving(folder, config.exact_max, cache=True, extra=extra) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=600) as client,
    ):
        _wait_job(client, small)
        warm = _peak_mb(server.pid)
        queued = client.post(f"/v1/tasks/{large_task}/embeddings", json={})
        queued.raise_for_status()
        job = _wait_job(client, queued.json()["id"])
        after_job = _peak_mb(server.pid)
    return {
        "file_mb": round(train.stat().st_size / 2**20, 1),
        "rows": rows,
        "max_examples": max_examples,
        "peak_mb": {
            "api: after a small upload": api_warm,
            "api: after the large upload": api_upload,
            "worker: after a small job": warm,
            "worker: after the large job": after_job,
        },
        "upload_s": round(upload_s, 1),
        "job_state": job["state"],
        "job_s": (job.get("timings") or {}).get("run_s"),
        "upload_added_mb": round(api_upload - api_warm, 1),
        "job_added_mb": round(after_job - warm, 1),
        "long_row_status": long_row,
    }


def _write_rows(path: Path, size: int) -> int:
    """Classification rows of about ``ROW_BYTES`` each until ``size`` bytes (or the row limit)."""
    words = ["good", "great", "fine", "bad", "awful", "poor", "long", "dull"]
    count = min(size // ROW_BYTES, 1_000_000 - 1)
    with path.open("w") as handle:
        for i in range(count):
            text = f"the film was {words[i % 8]} and {words[(i * 3) % 8]}, said viewer {i:08d}"
            label = "pos" if i % 8 < 4 else "neg"
            handle.write(json.dumps({"id": f"r{i}", "text": text, "label": label}) + "\n")
    return count


def _small_file(folder: Path) -> Path:
    path = folder / "small.jsonl"
    _write_rows(path, 64 * ROW_BYTES)
    return path


def _upload(client: httpx.Client, name: str, train: Path) -> tuple[int, int]:
    """The new task's id and its embedding job's."""
    with train.open("rb") as handle:
        response = client.post(
            "/v1/tasks",
            data={"name": name, "type": "classification", "labels": "neg,pos"},
            files={"train": ("train.jsonl", handle, "application/jsonl")},
        )
    response.raise_for_status()
    return response.json()["id"], response.json()["embedding"]["job_id"]


def _wait_job(client: httpx.Client, job_id: int, timeout: float = 1800) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise RuntimeError(f"job {job_id} did not finish in {timeout} s")


def _long_row_status(client: httpx.Client, folder: Path) -> int:
    path = folder / "long.jsonl"
    path.write_text(json.dumps({"id": "x", "text": "word " * 2_000_000, "label": "pos"}) + "\n")
    with path.open("rb") as handle:
        return client.post(
            "/v1/tasks",
            data={"name": "long", "type": "classification", "labels": "neg,pos"},
            files={"train": ("train.jsonl", handle, "application/jsonl")},
        ).status_code


def _peak_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM for {pid}")


def _table(result: dict[str, Any]) -> Table:
    table = Table("step", "peak RSS (MB)", title=f"{result['file_mb']} MB, {result['rows']} rows")
    for step, value in result["peak_mb"].items():
        table.add_row(step, f"{value:.0f}")
    table.add_row("upload added", f"{result['upload_added_mb']:.0f} (target < {TARGET_MB})")
    table.add_row("job added", f"{result['job_added_mb']:.0f} (target < {TARGET_MB})")
    table.add_row("upload time", f"{result['upload_s']} s")
    table.add_row("job", f"{result['job_state']} in {result['job_s']} s")
    table.add_row("10 MB text row", str(result["long_row_status"]))
    return table


if __name__ == "__main__":
    app()
