"""``taskrec evidence``: the server's evidence sets (measured transfers per transfer model).

Importing, deleting and choosing defaults need an admin key; listing and reading, any key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from service.cli.client import JsonOption, KeyOption, ServerOption, _api
from service.cli.common import fail, print_json, stdout


def register(app: typer.Typer) -> None:
    """Add the ``evidence`` group to ``app``."""
    evidence = typer.Typer(
        help="Evidence sets: measured transfers of a transfer model that rank recommendations.",
        no_args_is_help=True,
    )
    evidence.command("import")(evidence_import)
    evidence.command("list")(evidence_list)
    evidence.command("show")(evidence_show)
    evidence.command("default")(evidence_default)
    evidence.command("delete")(evidence_delete)
    evidence.command("calibrate")(evidence_calibrate)
    evidence.command("coverage")(evidence_coverage)
    app.add_typer(evidence, name="evidence")


def evidence_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or JSONL with source,target,seed,score (baseline, gain, metric optional)."
        ),
    ],
    transfer_model: Annotated[
        str,
        typer.Option(
            "--transfer-model",
            help="The model that was fine-tuned, as you load it (roberta-base, a folder, ...).",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="The new set's name.")],
    protocol: Annotated[
        str | None,
        typer.Option(help='How it was measured, as JSON: {"source_rows": "all", "epochs": 3}.'),
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Rank the transfer model's requests with it.")
    ] = False,
    note: Annotated[str | None, typer.Option(help="Where the numbers come from.")] = None,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Import a file of measured transfers as a named evidence set (admins; all or nothing)."""
    if not file.is_file():
        fail(f"no file at {file}")
    if protocol is not None:
        try:
            json.loads(protocol)
        except ValueError:
            fail(f"--protocol is not JSON: {protocol!r}")
    form = {"name": name, "transfer_model": transfer_model, "default": str(default).lower()}
    form |= {k: v for k, v in (("protocol", protocol), ("note", note)) if v is not None}
    with _api(server, key) as api, file.open("rb") as handle:
        made = api.request("POST", "/v1/evidence", data=form, files={"file": (file.name, handle)})
    if as_json:
        print_json(made)
        return
    _print_sets([made])


def evidence_list(
    as_json: JsonOption = False, server: ServerOption = None, key: KeyOption = None
) -> None:
    """List the evidence sets: transfer model, origin, default, size."""
    with _api(server, key) as api:
        sets = api.request("GET", "/v1/evidence")
    if as_json:
        print_json(sets)
        return
    if not sets:
        stdout.print(
            "no evidence sets yet: recommendations rank by embeddings alone. An admin imports a "
            "matrix with `taskrec evidence import FILE --transfer-model NAME --name SET`."
        )
        return
    _print_sets(sets)


def evidence_show(
    name: Annotated[str, typer.Argument(help="The set's name.")],
    limit: Annotated[int, typer.Option(help="Rows shown.")] = 20,
    offset: Annotated[int, typer.Option(help="Rows skipped.")] = 0,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """A set's summary, protocol and a page of its rows."""
    with _api(server, key) as api:
        found = api.request(
            "GET", f"/v1/evidence/{name}", params={"limit": limit, "offset": offset}
        )
    if as_json:
        print_json(found)
        return
    _print_sets([found])
    stdout.print(f"protocol: {json.dumps(found['protocol'])}")
    if found.get("note"):
        stdout.print(f"note: {found['note']}")
    table = Table("source", "target", "seed", "score", "baseline", "gain", "metric")
    for row in found["rows"]:
        cells = [row["source"], row["target"], str(row["seed"])]
        cells += [f"{row[k]:.2f}" for k in ("score", "baseline", "gain")]
        table.add_row(*cells, row["metric"])
    stdout.print(table)
    stdout.print(f"rows {offset + 1}-{offset + len(found['rows'])} of {found['total']}")


def evidence_default(
    name: Annotated[str, typer.Argument(help="The set's name.")],
    off: Annotated[bool, typer.Option("--off", help="Stop it being a default.")] = False,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Make a set a default of its transfer model (admins); defaults of another protocol stop
    being defaults."""
    with _api(server, key) as api:
        found = api.request("PATCH", f"/v1/evidence/{name}", json={"default": not off})
    if as_json:
        print_json(found)
        return
    _print_sets([found])


def evidence_delete(
    name: Annotated[str, typer.Argument(help="The set's name.")],
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Delete a set and its rows (admins)."""
    with _api(server, key) as api:
        api.request("DELETE", f"/v1/evidence/{name}")
    if as_json:
        print_json({"deleted": name})
        return
    stdout.print(f"deleted evidence set {name}")


def evidence_calibrate(
    transfer_model: Annotated[
        str | None,
        typer.Option("--transfer-model", help="The model to fine-tune (default: the server's)."),
    ] = None,
    sources: Annotated[
        str,
        typer.Option(
            help="missing (library tasks without a donor record), all, or comma-separated names."
        ),
    ] = "missing",
    probes: Annotated[
        str | None,
        typer.Option(help="Comma-separated probe targets (default: the server's setting)."),
    ] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds (at least 2).")] = "0,1",
    name: Annotated[
        str | None, typer.Option("--name", help="Evidence set (default calibration-<model>).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only estimate what it would run and cost.")
    ] = False,
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Measure library tasks as donors on the probe targets (admins): a backfill job below
    owners' jobs, its cost estimated first."""
    body: dict = {"sources": sources if sources in ("missing", "all") else _names(sources)}
    body |= {"seeds": [int(s) for s in _names(seeds)], "dry_run": dry_run}
    optional = {"transfer_model": transfer_model, "evidence_set": name}
    body |= {k: v for k, v in optional.items() if v is not None}
    if probes:
        body["probes"] = _names(probes)
    with _api(server, key) as api:
        planned = api.request("POST", "/v1/evidence/calibrations", json=body)
    if as_json:
        print_json(planned)
        return
    cost = planned["cost"]
    hours = cost["seconds"] / 3600
    stdout.print(
        f"{planned['evidence_set']} ({planned['transfer_model']}): {len(planned['sources'])} "
        f"sources × {len(planned['probes'])} probes ({', '.join(planned['probes'])}) × "
        f"{len(planned['seeds'])} seeds"
    )
    stdout.print(
        f"to run: {cost['sources_to_train']} source stages, {cost['baselines']} baselines, "
        f"{cost['target_runs']} target runs — about {hours:.1f} h on one CPU core"
    )
    job = planned["job_id"]
    stdout.print(f"job {job} queued (backfill)" if job else "nothing queued")


def evidence_coverage(
    transfer_model: Annotated[
        str | None, typer.Option("--transfer-model", help="Default: the server's.")
    ] = None,
    evidence_sets: Annotated[
        list[str],
        typer.Option(
            "--evidence-set",
            help="Count these sets (repeatable; default: the transfer model's default sets).",
        ),
    ] = [],  # noqa: B006 (Typer reads the default list)
    as_json: JsonOption = False,
    server: ServerOption = None,
    key: KeyOption = None,
) -> None:
    """Library tasks with a donor record in the transfer model's default sets (or the named)."""
    params: dict[str, Any] = {
        **({"transfer_model": transfer_model} if transfer_model else {}),
        **({"evidence_set": evidence_sets} if evidence_sets else {}),
    }
    with _api(server, key) as api:
        found = api.request("GET", "/v1/evidence/coverage", params=params)
    if as_json:
        print_json(found)
        return
    stdout.print(
        f"{found['transfer_model']}: {found['with_record']} of {found['library']} library tasks "
        f"have a donor record (sets: {', '.join(found['sets']) or 'none'})"
    )
    if found["missing"]:
        stdout.print(f"missing: {', '.join(found['missing'])}")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _print_sets(sets: list[dict]) -> None:
    table = Table("name", "transfer model", "origin", "default", "targets", "sources", "rows")
    for s in sets:
        summary = s["summary"]
        table.add_row(
            s["name"],
            s["transfer_model"],
            s["origin"],
            "yes" if s["default"] else "",
            str(summary.get("targets", "")),
            str(summary.get("sources", "")),
            str(summary.get("rows", "")),
        )
    stdout.print(table)
