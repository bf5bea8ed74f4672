"""Client commands against a live server (uvicorn in a thread): library add, submit, recommend,
jobs and transfers, with keys from options; errors from the API become one-line messages."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import uvicorn
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app
from service.db import upgrade


@pytest.fixture()
def db_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'client.db'}"  # the API is tested per backend elsewhere
    upgrade(url)
    return url


@pytest.fixture()
def server(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=30)


@pytest.fixture()
def folders(settings, make_rows, to_jsonl):
    def write(name, offset, vocabulary, root):
        folder = root / name
        folder.mkdir(parents=True)
        manifest = {
            "name": name,
            "type": "classification",
            "labels": ["neg", "pos"],
            "metric": "accuracy",
        }
        (folder / "task.json").write_text(json.dumps(manifest))
        (folder / "train.jsonl").write_bytes(to_jsonl(make_rows(20, offset, vocabulary)))
        (folder / "validation.jsonl").write_bytes(to_jsonl(make_rows(6, offset + 1, vocabulary)))
        return folder

    root = settings.tasks_root
    write("alpha", 1, 8, root)
    write("beta", 2, 10, root)
    return root, write("gamma", 3, 6, settings.data_dir.parent / "mine")


def _run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def test_client_commands_end_to_end(server, keys, folders):
    root, mine = folders
    admin = ["--server", server, "--key", keys.secrets["root"]]
    alice = ["--server", server, "--key", keys.secrets["alice"]]
    added = _run("library", "add", str(root), "--wait", "--json", *admin)
    assert added.exit_code == 0, added.output
    assert {(t["name"], t["status"]) for t in json.loads(added.stdout)} == {
        ("alpha", "ready"),
        ("beta", "ready"),
    }
    submitted = _run("submit", str(mine), "--wait", "--json", *alice)
    assert submitted.exit_code == 0, submitted.output
    task = json.loads(submitted.stdout[submitted.stdout.index("{") :])
    assert task["status"] == "ready"
    ranked = _run("recommend", str(task["task_id"]), "--k", "1", "--json", *alice)
    assert ranked.exit_code == 0, ranked.output
    body = json.loads(ranked.stdout)
    assert body["target"] == "gamma" and len(body["ranking"]) == 1
    assert set(body["ranking"][0]) == {"task", "score", "components"}  # as `similar --json`
    listed = json.loads(_run("jobs", "--json", *alice).stdout)
    assert [j["kind"] for j in listed] == ["embed"]
    human = _run("submit", str(mine).replace("gamma", "gamma"), "--key", keys.secrets["bob"],
                 "--server", server)  # fmt: skip
    assert human.exit_code == 0 and human.stdout.startswith("task ") and "gamma" in human.stdout
    cancelled = json.loads(_run("jobs", "--cancel", "--json", "--server", server,
                                "--key", keys.secrets["bob"]).stdout)  # fmt: skip
    assert [j["state"] for j in cancelled] in ([], ["cancelled"])  # bob's embedding, if not done
    sources = next(t["task_id"] for t in json.loads(added.stdout) if t["name"] == "alpha")
    started = _run(
        "transfers",
        "start",
        "--target",
        str(task["task_id"]),
        "--sources",
        str(sources),
        "--epochs",
        "0.5",
        "--wait",
        "--json",
        *alice,
    )
    assert started.exit_code == 0, started.output
    run = json.loads(started.stdout[started.stdout.index("{") :])
    assert run["state"] == "succeeded" and run["result"]["metric"] == "accuracy"


def test_client_errors_are_one_line(server, keys, monkeypatch):
    monkeypatch.delenv("TASKREC_API_KEY", raising=False)
    missing = _run("jobs", "--server", server)
    assert missing.exit_code == 2 and "no API key" in missing.output
    wrong = _run("jobs", "--server", server, "--key", "trk_wrong")
    assert wrong.exit_code == 2 and "unknown API key (HTTP 401)" in wrong.output
    absent = _run("recommend", "999", "--server", server, "--key", keys.secrets["alice"])
    assert absent.exit_code == 2 and "no task 999 (HTTP 404)" in absent.output
    as_json = _run("recommend", "999", "--json", "--server", server, "--key", keys.secrets["alice"])
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout) == {"error": "no task 999 (HTTP 404)"}


def test_without_server_the_client_finds_the_local_one_by_the_settings(server, keys, monkeypatch):
    from service.settings import get_settings

    monkeypatch.delenv("TASKREC_SERVER", raising=False)
    monkeypatch.setenv("TASKREC_HOST", "0.0.0.0")  # as `serve` may listen; reached on loopback
    monkeypatch.setenv("TASKREC_PORT", server.rsplit(":", 1)[1])
    get_settings.cache_clear()
    try:
        found = _run("jobs", "--key", keys.secrets["alice"], "--json")
    finally:
        get_settings.cache_clear()
    assert found.exit_code == 0, found.output
    assert isinstance(json.loads(found.stdout), list | dict)


def test_an_imported_matrix_ranks_an_owners_task_for_its_model(
    server, keys, folders, tmp_path, make_rows, to_jsonl
):
    root, mine = folders
    for name, offset in (("delta", 4), ("epsilon", 5)):
        folder = root / name
        folder.mkdir()
        manifest = {"name": name, "type": "classification", "labels": ["neg", "pos"]}
        (folder / "task.json").write_text(json.dumps(manifest | {"metric": "accuracy"}))
        (folder / "train.jsonl").write_bytes(to_jsonl(make_rows(20, offset, 7)))
    admin = ["--server", server, "--key", keys.secrets["root"]]
    alice = ["--server", server, "--key", keys.secrets["alice"]]
    assert _run("library", "add", str(root), "--wait", "--json", *admin).exit_code == 0
    names = ("alpha", "beta", "delta", "epsilon")
    gains = {"alpha": 6.0, "beta": -3.0, "delta": 1.0, "epsilon": 0.5}  # alpha helps most
    lines = ["source,target,seed,score"]  # no baseline: gains against the sources' mean
    for target in names[1:]:
        for seed in (0, 1):
            lines += [f"{s},{target},{seed},{0.6 + gains[s] / 100}" for s in names if s != target]
    matrix = tmp_path / "roberta.csv"
    matrix.write_text("\n".join(lines) + "\n")
    imported = _run(
        "evidence", "import", str(matrix), "--transfer-model", "roberta-base",
        "--name", "lab-roberta", "--protocol", '{"epochs": 3}', "--json", *admin,
    )  # fmt: skip
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["summary"]["gain_basis"] == "mean of sources"
    listed = json.loads(_run("evidence", "list", "--json", *alice).stdout)
    assert [(s["name"], s["transfer_model"], s["default"]) for s in listed] == [
        ("lab-roberta", "roberta-base", True)
    ]
    out = _run("submit", str(mine), "--wait", "--json", *alice).stdout
    submitted = json.loads(out[out.index("{") :])
    ranked = _run(
        "recommend", str(submitted["task_id"]), "--transfer-model", "roberta-base",
        "--method", "learned", "--json", *alice,
    )  # fmt: skip
    assert ranked.exit_code == 0, ranked.output
    body = json.loads(ranked.stdout)
    assert body["method"] == "learned" and body["transfer_model"] == "roberta-base"
    assert body["evidence"]["sets"] == ["lab-roberta"] and body["evidence"]["targets"] == 3
    assert body["ranking"][0]["task"] == "alpha" and "lab-roberta" in body["note"]
    bad = tmp_path / "bad.csv"
    bad.write_text("source,target,seed,score\nalpha,beta,0,0.5\nzeta,beta,0,0.5\n")
    refused = _run("evidence", "import", str(bad), "--transfer-model", "x", "--name", "bad", *admin)
    assert refused.exit_code == 2
    assert "bad.csv:3: source: 'zeta' is not a library task (HTTP 422)" in refused.output
    covered = _run("evidence", "coverage", "--transfer-model", "roberta-base", "--json", *alice)
    named = ("evidence", "coverage", "--transfer-model", "roberta-base", "--evidence-set")
    assert json.loads(_run(*named, "lab-roberta", "--json", *alice).stdout) == json.loads(
        covered.stdout
    )
    unknown = _run(*named, "nope", *alice)
    assert unknown.exit_code == 2 and "no evidence set named 'nope'" in unknown.output
    assert json.loads(covered.stdout) | {"missing": []} == {
        "transfer_model": "roberta-base",
        "sets": ["lab-roberta"],
        "library": 4,
        "with_record": 4,
        "missing": [],
    }
    probes = ("--probes", "alpha,beta,delta,epsilon")
    calibrate = _run("evidence", "calibrate", *probes, "--dry-run", *admin)
    assert calibrate.exit_code == 2 and "of 3 task types (got 4 of 1)" in calibrate.output
    shown = _run("evidence", "show", "lab-roberta", "--limit", "2", *alice)
    assert shown.exit_code == 0 and "rows 1-2 of 18" in shown.stdout
    assert _run("evidence", "delete", "lab-roberta", *alice).exit_code == 2  # admins only
    assert _run("evidence", "delete", "lab-roberta", *admin).exit_code == 0
    assert json.loads(_run("evidence", "list", "--json", *admin).stdout) == []


def test_choices_are_listed_and_checked_and_the_version_is_printed():
    helped = _run("transfers", "start", "--help")
    assert "sequential|multitask" in helped.output and "limited|full" in helped.output
    bad = _run("recommend", "1", "--method", "nope", "--key", "k")
    assert bad.exit_code == 2 and "'nope' is not one of" in bad.output
    assert _run("jobs", "--state", "sleeping", "--key", "k").exit_code == 2
    from importlib.metadata import version

    shown = _run("--version")
    assert shown.exit_code == 0 and shown.stdout.strip() == f"taskrec {version('taskrec')}"
