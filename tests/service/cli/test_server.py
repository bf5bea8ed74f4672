"""``taskrec db`` and ``taskrec serve`` end to end: a real server process on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from service.cli import app

CLI = [sys.executable, "-c", "from service.cli import app; app()"]


def test_db_upgrade_and_current(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKREC_DATABASE_URL", raising=False)
    runner = CliRunner()
    data_dir = str(tmp_path / "data")
    assert runner.invoke(app, ["db", "current", "--data-dir", data_dir]).stdout.strip() == "empty"
    result = runner.invoke(app, ["db", "upgrade", "--data-dir", data_dir])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["db", "current", "--data-dir", data_dir]).stdout.strip() == "0004"


def test_worker_needs_a_broker(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKREC_BROKER_URL", raising=False)
    result = CliRunner().invoke(app, ["worker", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "TASKREC_BROKER_URL" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(tmp_path, port, tiny_encoder_dir, *extra: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKREC_")} | {
        "TASKREC_MODEL": str(tiny_encoder_dir),
        "TASKREC_TORCH_THREADS": "1",
    }
    args = ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--no-library"]
    args += list(extra)
    return subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )


def _wait_healthy(port: int, process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server did not become healthy")


def test_serve_prints_a_first_admin_key_once(tmp_path, tiny_encoder_dir):
    port = _free_port()
    process = _serve(tmp_path, port, tiny_encoder_dir)
    try:
        key = process.stdout.readline().strip()
        assert key.startswith("trk_")
        _wait_healthy(port, process)
        me = httpx.get(f"http://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert me.json()["is_admin"] is True
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready["status"] == "ready"
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    process = _serve(tmp_path, port, tiny_encoder_dir)  # second start: no new key
    try:
        _wait_healthy(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert "trk_" not in output


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_serve_with_several_worker_processes(tmp_path, tiny_encoder_dir):
    port = _free_port()
    process = _serve(tmp_path, port, tiny_encoder_dir, "--workers", "2")
    try:
        key = process.stdout.readline().strip()
        assert key.startswith("trk_")
        _wait_healthy(port, process)
        headers = {"Authorization": f"Bearer {key}"}
        statuses = {
            httpx.get(f"http://127.0.0.1:{port}/v1/me", headers=headers).status_code
            for _ in range(10)
        }
        assert statuses == {200}
        workers = [p for p in _children(process.pid) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2, [_cmdline(p) for p in _children(process.pid)]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_server_killed_mid_upload_leaves_no_staging_after_restart(tmp_path, tiny_encoder_dir):
    """``kill -9`` while a large upload streams in: the staging folder it leaves is removed
    when the server starts again, with a log line, and no task was created."""
    import threading

    port = _free_port()
    data_dir = tmp_path / "data"
    server = _serve(tmp_path, port, tiny_encoder_dir)
    key = server.stdout.readline().strip()
    _wait_healthy(port, server)
    staging = data_dir / "staging"
    streaming = threading.Event()

    boundary = "killedboundary"

    def body():  # multipart written by hand: the file part streams for as long as it may
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in (
                ("name", "killed"),
                ("type", "classification"),
                ("labels", "neg,pos"),
            )
        )
        yield head.encode()
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="train"; '
            'filename="train.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n'
        ).encode()
        yield b'{"id": "r0", "text": "good", "label": "pos"}\n' * 20_000  # ~1 MB at once
        streaming.set()
        for _ in range(600):  # then slowly, until the server dies
            time.sleep(0.05)
            yield b'{"id": "r1", "text": "bad", "label": "neg"}\n' * 100

    def upload() -> None:
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        }
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(
                f"http://127.0.0.1:{port}/v1/tasks", content=body(), headers=headers, timeout=60
            )

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    assert streaming.wait(30)
    deadline = time.monotonic() + 30
    while not any(staging.glob("*/*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in staging.iterdir() if p.is_dir()]
    assert left, "the upload never reached the staging folder"
    server.kill()  # SIGKILL: no cleanup runs
    server.wait(timeout=30)
    uploader.join(timeout=30)
    assert all(p.exists() for p in left)  # the dead request's folder is still there

    restarted = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(data_dir), "--no-library"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("TASKREC_")}
        | {"TASKREC_MODEL": str(tiny_encoder_dir), "TASKREC_TORCH_THREADS": "1"},
        text=True,
    )
    try:
        _wait_healthy(port, restarted)
        deadline = time.monotonic() + 20
        while any(p.exists() for p in left) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(p.exists() for p in left)
        tasks = httpx.get(
            f"http://127.0.0.1:{port}/v1/tasks", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert tasks["total"] == 0
    finally:
        restarted.send_signal(signal.SIGTERM)
        output, _ = restarted.communicate(timeout=30)
    assert "removed 1 staging folder(s) of dead requests" in output
