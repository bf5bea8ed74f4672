"""Staging folders of dead requests are removed when the server starts (and periodically)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

from fastapi.testclient import TestClient

from service.app import create_app
from service.tasks.uploads import OWNER_FILE


def _staged(root, name: str, owner: str, size: int = 1000, age_s: float = 0.0):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / OWNER_FILE).write_text(owner)
    (folder / "train.jsonl").write_bytes(b"x" * size)
    if age_s:
        then = time.time() - age_s
        os.utime(folder, (then, then))
    return folder


def test_a_restart_removes_what_dead_uploads_left(settings, caplog):
    host = socket.gethostname()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead = _staged(settings.staging_dir, "dead", f"{host}:{gone.stdout.strip()}", size=4096)
    live = _staged(settings.staging_dir, "live", f"{host}:{os.getpid()}")
    old = _staged(settings.staging_dir, "old", "elsewhere:1", age_s=settings.staging_max_age_s + 9)
    recent = _staged(settings.staging_dir, "recent", "elsewhere:1")
    with caplog.at_level(logging.INFO, logger="service.app"), TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        while "removed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not dead.exists() and not old.exists()
    assert live.exists() and recent.exists()  # a live request's, and another host's recent one
    assert "removed 2 staging folder(s) of dead requests" in caplog.text
