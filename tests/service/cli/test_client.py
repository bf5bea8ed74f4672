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
    submitted = _run("submit", str(mine), "--wait", *alice)
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
