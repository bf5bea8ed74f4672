"""The README's quickstart, run as written against a real ``taskrec serve``.

The commands are read from README.md itself (the block that exports ``TASKREC_API_KEY``), so the
README cannot drift from what works. Only the placeholders the README asks the reader to fill in
change: the admin key serve printed and the port. Sizes are made small through the documented
settings (``TASKREC_MAX_EXAMPLES``, ``TASKREC_TRANSFER_*``) and the tiny test encoder; the library
is three real tasks, one of them ``wnli``, the task the quickstart submits, so a library task and
an owner's task of one name must coexist.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.service.cli.test_server import CLI, _free_port, _wait_healthy

REPO = Path(__file__).resolve().parents[3]
LIBRARY = ("rte", "cb", "wnli")


def quickstart_block() -> str:
    """The README's fenced bash block that sets ``TASKREC_API_KEY``."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    found = [b for b in blocks if "TASKREC_API_KEY=" in b]
    assert len(found) == 1, "README.md should hold exactly one quickstart block"
    return found[0]


def test_readme_quickstart_runs_as_written(tmp_path, tasks_root, tiny_encoder_dir):
    if not (REPO / ".venv/bin/taskrec").exists():
        pytest.skip("the quickstart calls .venv/bin/taskrec (scripts/setup.sh makes it)")
    library = tmp_path / "library"
    library.mkdir()
    for name in LIBRARY:
        (library / name).symlink_to(tasks_root / name)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKREC_")} | {
        "TASKREC_MODEL": str(tiny_encoder_dir),
        "TASKREC_TASKS_ROOT": str(library),
        "TASKREC_DATA_DIR": str(tmp_path / "data"),
        "TASKREC_TORCH_THREADS": "1",
        "TASKREC_MAX_EXAMPLES": "32",
        "TASKREC_TRANSFER_SOURCE_MAX_EXAMPLES": "64",
        "TASKREC_TRANSFER_EVAL_N": "32",
        "TASKREC_TRANSFER_MAX_STEPS": "2",
    }
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        key = server.stdout.readline().strip()
        assert key.startswith("trk_")
        _wait_healthy(port, server)
        _wait_for_library(port, key)
        script = (
            quickstart_block()
            .replace("trk_…", key)
            .replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        )
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        # What the reader should see: a recommendation and a finished transfer with its gain.
        assert "ranked by" in ran.stdout, ran.stdout[-3000:]
        assert re.search(r"transfer \d+: \w+ → wnli .* succeeded", ran.stdout), ran.stdout[-3000:]
        assert re.search(r"gain +-?\d+\.\d+ ± ", ran.stdout), ran.stdout[-3000:]
        transfers = httpx.get(
            f"http://127.0.0.1:{port}/v1/transfers", headers={"Authorization": f"Bearer {key}"}
        ).json()["items"]
        assert [t["state"] for t in transfers] == ["succeeded"]
        assert transfers[0]["target"]["name"] == "wnli"
        assert transfers[0]["sources"][0]["name"] in LIBRARY
        library_tasks = httpx.get(
            f"http://127.0.0.1:{port}/v1/library", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert "wnli" in str(library_tasks), "the library's wnli must survive the user's"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _wait_for_library(port: int, key: str, timeout: float = 300.0) -> None:
    """The library's backfill done (main.sh serves shipped embeddings instead; the tiny test
    encoder has none, so they are computed here)."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        jobs = httpx.get(f"http://127.0.0.1:{port}/v1/jobs", headers=headers).json()["items"]
        if jobs and all(job["state"] == "succeeded" for job in jobs):
            return
        assert not any(job["state"] == "failed" for job in jobs), jobs
        time.sleep(0.5)
    raise AssertionError("the library's embedding jobs did not finish")
