"""Scale-out with a real Redis broker and real ``taskrec worker`` processes.

A worker is killed with ``kill -9`` in the middle of an embedding job; the other worker's reaper
sees the silent heartbeat, queues the job again, and the job finishes there. The database is
PostgreSQL (the scale-out deployment) when reachable, else a SQLite file both processes share.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis

from service.db import upgrade

REDIS_URL = os.environ.get("TASKREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
CLI = [sys.executable, "-c", "from service.cli import app; app()"]


@pytest.fixture()
def db_url(request, tmp_path) -> str:
    """One database for the API and the workers (this module does not run per backend)."""
    from psycopg import OperationalError, connect

    try:
        connect("host=127.0.0.1 user=postgres dbname=test", connect_timeout=3).close()
        url = request.getfixturevalue("fresh_pg_url")
    except OperationalError:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    upgrade(url)
    return url


@pytest.fixture()
def settings_overrides():
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    return {
        "broker_url": REDIS_URL,
        "queue_namespace": f"test-{uuid.uuid4().hex[:8]}",  # never share queues with others
        "max_examples": 120,
        "embed_batch_size": 2,  # a job of a few seconds: long enough to kill in the middle
        "job_heartbeat_s": 0.3,
        "job_stale_after_s": 2.0,
        "job_reap_interval_s": 0.5,
        "job_progress_interval_s": 0.1,
    }


def _env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKREC_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, list):
            value = json.dumps([str(v) for v in value])
        env[f"TASKREC_{name.upper()}"] = str(value)
    return env


@pytest.fixture()
def workers(settings, tmp_path):
    """Two worker processes on the embed and finetune queues; killed at the end."""
    processes = {}
    for name in ("w1", "w2"):
        log = (tmp_path / f"{name}.log").open("w")
        processes[name] = subprocess.Popen(
            [*CLI, "worker", "--queues", "embed,finetune", "--hostname", f"{name}@test"],
            env=_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    for name in processes:
        while "ready" not in (tmp_path / f"{name}.log").read_text():
            assert processes[name].poll() is None, (tmp_path / f"{name}.log").read_text()
            assert time.monotonic() < deadline, f"worker {name} did not start"
            time.sleep(0.1)
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"*{settings.queue_namespace}*"):  # this run's queues only
        client.delete(key)


def _job(client, headers, job_id):
    return client.get(f"/v1/jobs/{job_id}", headers=headers).json()


def test_killed_worker_job_is_finished_by_another(
    client, keys, upload, make_rows, workers, wait_job, settings
):
    offset = int(time.time() * 1000) % 100_000 + 50_000  # unseen data: really computed
    response = upload(keys.alice, "scaled", rows=make_rows(120, offset=offset, vocabulary=10))
    assert response.status_code == 201, response.text
    task = response.json()
    job_id = task["embedding"]["job_id"]
    deadline = time.monotonic() + 90
    while True:  # wait until a worker is well into the job
        job = _job(client, keys.alice, job_id)
        if job["state"] == "running" and job["stage"] and job["step"] >= 2:
            break
        assert job["state"] in ("queued", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    owner = job["worker"]  # host:pid/worker name
    pid = int(owner.split("/")[0].rsplit(":", 1)[1])
    victim = next(name for name, p in workers.items() if p.pid == pid)
    os.kill(pid, signal.SIGKILL)
    workers[victim].wait(timeout=10)
    done = wait_job(job_id, keys.alice, timeout=120)
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 2
    assert done["worker"] != owner and f"{victim}@test" not in done["worker"]
    read = client.get(f"/v1/tasks/{task['id']}", headers=keys.alice).json()
    assert read["status"] == "ready" and read["embedding"]["methods"] == [
        "semb",
        "taskemb",
        "textemb",
    ]
    # A duplicate delivery of the same job id is a no-op: the job is finished already.
    client.app.state.context.dispatcher.enqueue(job_id, "embed")
    time.sleep(1.0)
    assert _job(client, keys.alice, job_id)["attempts"] == 2
