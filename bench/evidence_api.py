"""The served ranking against the evaluated one: an evidence set imported for a second transfer
model, scored leave-one-target-out through the API, next to ``taskrec evaluate``'s numbers.

    python -m bench.evidence_api results/matrix-10k.csv [--transfer-model another-lab/model]

It starts ``taskrec serve --library`` as ``scripts/main.sh`` does (SQLite, the embedded worker,
the packaged MiniLM, the library's embeddings from ``results/embeddings``, the saved ranker
file) in a fresh data directory, with no shipped evidence, so the transfer model asked about
has none but what this script imports. Then for each target T of the CSV it imports the CSV
without T's rows as an evidence set of that transfer model (``POST /v1/evidence``), asks
``GET /v1/tasks/{T}/recommendations?method=learned&transfer_model=...&evidence_set=...`` for
the whole library, keeps the sources measured on T in the order served, and scores that as
``taskrec evaluate`` scores a method: the place of T's best source (ρ) and Regret@3 over T's
scores with transfer. Last it runs ``taskrec evaluate CSV --methods learned,datasize,sized
--per-target --json`` and prints both side by side (the difference per target, and the means).

What it checks: that a client importing another lab's matrix gets, through the API, the
ranking whose quality the evaluation reports (issue 12's done-when). The two fit the same
ranker settings (``results/ranker.json``'s) on the same rows; they can differ where the API
ranks among all library tasks and ties fall differently.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.table import Table

from bench.recommend import free_port, stop
from workers.research.metrics import best_source_rank, regret_at_k
from workers.selection.results import outcomes, read_results

REPO = Path(__file__).resolve().parents[1]
ADMIN_KEY = "trk_evidence-api-check-admin-key-0123456789"
CLI = [sys.executable, "-c", "from service.cli import app; app()"]
console = Console()


def main(
    results_csv: Path = typer.Argument(..., help="A sweep CSV (source,target,seed,score,...)."),
    transfer_model: str = typer.Option(
        "another-lab/minilm-stand-in",
        help="The transfer model the set is imported as (not MiniLM).",
    ),
    ready_timeout: float = typer.Option(900, help="Seconds to wait for the library."),
) -> None:
    rows = read_results(results_csv)
    measured = outcomes(rows)
    with (
        tempfile.TemporaryDirectory(prefix="taskrec-evidence-api-") as folder,
        _server(Path(folder), ready_timeout) as api,
    ):
        ids = _library_ids(api)
        served = {
            target: _served_loto(api, ids, results_csv, target, transfer_model)
            for target in sorted(measured)
        }
    evaluated = _evaluate(results_csv)
    scored = {  # the targets evaluate scored (it skips one with fewer than 2 sources)
        target: _score(ranking, measured[target])
        for target, ranking in served.items()
        if target in evaluated["learned"]
    }
    _print(scored, evaluated, served)


def _server(folder: Path, ready_timeout: float):
    """``taskrec serve --library`` on a free port, its library embedded from the seeds."""
    import contextlib

    @contextlib.contextmanager
    def serving():
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKREC_")} | {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TASKREC_ADMIN_KEY": ADMIN_KEY,
            "TASKREC_TASKS_ROOT": str(_tasks_root()),
            "TASKREC_EMBEDDING_SEED_PATHS": json.dumps([str(REPO / "results" / "embeddings")]),
            "TASKREC_EMBED_PRECISION": "fp32",
            "TASKREC_RANKER_PATH": str(REPO / "results" / "ranker.json"),
            "TASKREC_EVIDENCE_FILES": "{}",
            "TASKREC_RATE_LIMIT_PER_MINUTE": "0",
            "TASKREC_EMBEDDED_WORKERS": "2",
        }
        command = [*CLI, "serve", "--port", str(port)]
        command += ["--data-dir", str(folder / "data"), "--library"]
        log = (folder / "serve.log").open("w")
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=120,
        )
        try:
            _wait_library(api, process, folder / "serve.log", ready_timeout)
            yield api
        finally:
            api.close()
            stop(process)
            log.close()

    return serving()


def _wait_library(api: httpx.Client, process, log: Path, timeout: float) -> None:
    from workers.data.loaders import iter_task_dirs

    expected = len(list(iter_task_dirs(_tasks_root())))
    deadline = time.monotonic() + timeout
    with console.status("waiting for the library's embeddings") as status:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"taskrec serve exited:\n{log.read_text()[-3000:]}")
            try:
                items = api.get("/v1/library", params={"limit": 500}).json()["items"]
            except (httpx.TransportError, KeyError, ValueError):
                time.sleep(1)
                continue
            states = [t["embedding"]["state"] for t in items]
            if "failed" in states:
                failed = [t["name"] for t in items if t["embedding"]["state"] == "failed"]
                raise RuntimeError(f"embedding failed for {', '.join(failed)}: see {log}")
            ready = states.count("ready")
            status.update(f"library: {ready} of {expected} tasks embedded")
            if len(items) == expected and ready == expected:  # every folder registered too
                return
            time.sleep(2)
    raise RuntimeError(f"the library was not embedded after {timeout:.0f} s")


def _library_ids(api: httpx.Client) -> dict[str, int]:
    items = api.get("/v1/library", params={"limit": 500}).json()["items"]
    return {t["name"]: t["id"] for t in items}


def _served_loto(
    api: httpx.Client, ids: dict[str, int], results_csv: Path, target: str, model: str
) -> list[dict]:
    """The served learned ranking of ``target`` from the CSV's other targets' rows alone: each
    task with the components the API answered with."""
    name = f"loto-{target}"
    kept = _without_target(results_csv, target)
    files = {"file": (f"{name}.csv", kept.encode(), "text/csv")}
    made = api.post("/v1/evidence", data={"name": name, "transfer_model": model}, files=files)
    made.raise_for_status()
    try:
        params = {
            "method": "learned",
            "transfer_model": model,
            "evidence_set": name,
            "k": len(ids),
        }
        answer = api.get(f"/v1/tasks/{ids[target]}/recommendations", params=params)
        answer.raise_for_status()
        body = answer.json()
        if not body["evidence"]["used"]:
            raise RuntimeError(f"{target}: the evidence was not used: {body['evidence']}")
        return [{"task": item["task"], **item["components"]} for item in body["ranking"]]
    finally:
        api.delete(f"/v1/evidence/{name}")


def _without_target(results_csv: Path, target: str) -> str:
    with results_csv.open(newline="") as handle:
        reader = csv.DictReader(handle)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        writer.writerows(row for row in reader if row["target"] != target)
    return out.getvalue()


def _score(ranking: list[dict], measured) -> dict[str, float]:
    """ρ and Regret@3 of the served order of the sources measured on the target."""
    order = [item["task"] for item in ranking if item["task"] in measured]
    missing = set(measured) - set(order)
    if missing:
        raise RuntimeError(f"the served ranking lacks measured sources: {sorted(missing)}")
    gains = {s: o.gain for s, o in measured.items()}
    scores = {s: o.score for s, o in measured.items()}
    return {"rho": best_source_rank(order, gains), "regret@3": regret_at_k(order, scores, 3)}


def _evaluate(results_csv: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``taskrec evaluate``'s leave-one-target-out, per method and target."""
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TASKREC_CACHE_PATH": str(REPO / "results" / "embeddings"),
        "TASKREC_EMBED_PRECISION": "fp32",
        "TASKREC_RANKER_PATH": str(REPO / "results" / "ranker.json"),
    }
    command = [*CLI, "evaluate", str(results_csv)]
    command += ["--methods", "learned,datasize,sized", "--per-target", "--json"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    found: dict[str, dict[str, dict[str, float]]] = {}
    for row in json.loads(done.stdout)["per_target"]:
        if row["scope"] == "all":
            found.setdefault(row["method"], {})[row["target"]] = {
                "rho": row["rank"],
                "regret@3": row["regret"]["3"],
            }
    return found


def _print(scored, evaluated, served) -> None:
    table = Table(title="learned, leave-one-target-out: served (API) vs evaluated")
    for column in ("target", "API ρ", "evaluate ρ", "API Regret@3 %", "evaluate Regret@3 %"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for target, mine in scored.items():
        theirs = evaluated["learned"][target]
        table.add_row(
            target,
            f"{mine['rho']:.0f}",
            f"{theirs['rho']:.0f}",
            f"{mine['regret@3']:.2f}",
            f"{theirs['regret@3']:.2f}",
        )
    mean = lambda values: statistics.fmean(values)  # noqa: E731
    api_rho, api_regret = (mean(m[k] for m in scored.values()) for k in ("rho", "regret@3"))
    table.add_row(
        "mean",
        f"{api_rho:.2f}",
        f"{mean(evaluated['learned'][t]['rho'] for t in scored):.2f}",
        f"{api_regret:.2f}",
        f"{mean(evaluated['learned'][t]['regret@3'] for t in scored):.2f}",
    )
    console.print(table)
    same = sum(scored[t]["rho"] == evaluated["learned"][t]["rho"] for t in scored)
    console.print(f"same best-source place on {same} of {len(scored)} targets")
    for method in ("datasize", "sized"):
        rho = mean(evaluated[method][t]["rho"] for t in scored)
        regret = mean(evaluated[method][t]["regret@3"] for t in scored)
        console.print(
            f"{method} (no evidence), evaluated: ρ {rho:.2f}, Regret@3 {regret:.2f}% — API "
            f"learned / {method}: ρ {api_rho / rho:.2f}×, Regret@3 "
            + (f"{api_regret / regret:.2f}×" if regret else "n/a")
        )
    out = REPO / "bench" / "out" / "evidence_api.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"api": scored, "evaluate": evaluated, "served": served}, indent=1))
    console.print(f"wrote {out}")


def _tasks_root() -> Path:
    default = REPO / ".." / "shared" / "tasks"
    return Path(os.environ.get("TASKREC_TASKS_ROOT", default)).resolve()


if __name__ == "__main__":
    typer.run(main)
