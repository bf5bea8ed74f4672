"""A Redis broker outage with a real Celery worker: ``/readyz`` names the queue, an upload is
still accepted (its job waits in the database, its message in the API process), and when the
broker is back the job is sent and finished. Redis sits behind a TCP relay the test takes down,
so the shared server is untouched."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlparse

import pytest
import redis

from tests.service.jobs.test_celery import REDIS_URL, _job, db_url, workers  # noqa: F401
from tests.service.relay import Relay


@pytest.fixture()
def relay():
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {exc}")
    parsed = urlparse(REDIS_URL)
    relay = Relay(parsed.hostname, parsed.port or 6379)
    yield relay
    relay.down()


@pytest.fixture()
def settings_overrides(relay):
    parsed = urlparse(REDIS_URL)
    return {
        "broker_url": f"redis://127.0.0.1:{relay.port}{parsed.path}",
        "queue_namespace": f"test-{uuid.uuid4().hex[:8]}",
        "max_examples": 32,
        "job_reap_interval_s": 0.5,
    }


def test_a_job_queued_while_the_broker_is_down_runs_when_it_is_back(
    client,
    keys,
    upload,
    relay,
    workers,  # noqa: F811
):
    relay.down()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["queue"].startswith("failed")
    assert client.get("/healthz").status_code == 200
    started = time.monotonic()
    response = upload(keys.alice, "during-outage")
    assert response.status_code == 201, response.text  # kept: the job waits in the database
    assert time.monotonic() - started < 5
    job_id = response.json()["embedding"]["job_id"]
    time.sleep(1.5)
    assert _job(client, keys.alice, job_id)["state"] == "queued"

    relay.up()
    deadline = time.monotonic() + 90
    while _job(client, keys.alice, job_id)["state"] != "succeeded":
        assert time.monotonic() < deadline, _job(client, keys.alice, job_id)
        time.sleep(0.2)
    assert client.get("/readyz").status_code == 200
