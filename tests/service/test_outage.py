"""A PostgreSQL outage under a real ``taskrec serve``: requests answer 503 fast and say why,
``/readyz`` names the database, ``/healthz`` keeps answering, and when the database is back the
service serves again and the job that was running when it went away finishes.

The outage is real at the network level without touching the shared server: the service talks
to PostgreSQL through a TCP relay that the test closes (every connection reset, new ones
refused, as when the server restarts) and opens again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.service.cli.test_server import CLI, _free_port, _wait_healthy
from tests.service.conftest import PG_HOST
from tests.service.relay import Relay

PG_PORT = 5432


@pytest.fixture()
def relayed_pg_url(fresh_pg_url) -> tuple[str, Relay]:
    relay = Relay(PG_HOST, PG_PORT)
    yield fresh_pg_url.replace(f"{PG_HOST}:{PG_PORT}", f"127.0.0.1:{relay.port}"), relay
    relay.down()


def _rows(n: int, seed: int) -> bytes:
    words = ["good", "great", "fine", "bad", "awful", "poor", "long", "dull"]
    lines = [
        {
            "id": f"r{i}",
            "text": " ".join(words[(i * k + seed) % 8] for k in range(1, 12)),
            "label": "pos" if (i + seed) % 8 < 4 else "neg",
        }
        for i in range(n)
    ]
    return "".join(json.dumps(row) + "\n" for row in lines).encode()


def test_a_database_outage_is_answered_fast_and_the_service_recovers(
    tmp_path, tiny_encoder_dir, relayed_pg_url
):
    url, relay = relayed_pg_url
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKREC_")} | {
        "TASKREC_MODEL": str(tiny_encoder_dir),
        "TASKREC_TORCH_THREADS": "1",
        "TASKREC_DATABASE_URL": url,
        "TASKREC_MAX_EXAMPLES": "600",
        "TASKREC_EMBED_BATCH_SIZE": "2",  # a job of several seconds: the outage hits it running
    }
    args = ["serve", "--port", str(port), "--data-dir", str(tmp_path / "data"), "--no-library"]
    server = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    try:
        key = server.stdout.readline().strip()
        _wait_healthy(port, server)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
            job_id = _upload(api, "before", 600)
            _wait_state(api, job_id, {"running"})

            relay.down()
            started = time.monotonic()
            answer = api.get("/v1/tasks")
            assert answer.status_code == 503, answer.text
            assert time.monotonic() - started < 6
            assert "database is unavailable" in answer.json()["message"]
            assert answer.headers.get("retry-after")
            ready = api.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("failed")
            assert api.get("/healthz").status_code == 200
            upload = api.post(
                "/v1/tasks",
                data={"name": "during", "type": "classification", "labels": "neg,pos"},
                files={"train": ("train.jsonl", _rows(20, 1), "application/jsonl")},
            )
            assert upload.status_code == 503, upload.text
            time.sleep(2)

            relay.up()
            back = datetime.now(UTC)
            _wait_status(api, "/readyz", 200)
            job = _wait_state(api, job_id, {"succeeded", "failed"}, timeout=180)
            assert job["state"] == "succeeded", job
            # It ran through the outage (its progress writes are best effort; a failed claim,
            # heartbeat or commit would have been retried) and finished after it
            assert datetime.fromisoformat(job["finished_at"]) > back
            after = _upload(api, "after", 20)
            assert _wait_state(api, after, {"succeeded", "failed"})["state"] == "succeeded"
            names = [t["name"] for t in api.get("/v1/tasks").json()["items"]]
            assert sorted(names) == ["after", "before"]  # nothing of the refused upload
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _upload(api: httpx.Client, name: str, rows: int) -> int:
    response = api.post(
        "/v1/tasks",
        data={"name": name, "type": "classification", "labels": "neg,pos"},
        files={"train": ("train.jsonl", _rows(rows, len(name)), "application/jsonl")},
    )
    assert response.status_code == 201, response.text
    return response.json()["embedding"]["job_id"]


def _wait_state(api: httpx.Client, job_id: int, states: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/v1/jobs/{job_id}")
        if response.status_code == 200 and response.json()["state"] in states:
            return response.json()
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}")


def _wait_status(api: httpx.Client, path: str, status: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(path).status_code == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never answered {status}")
