"""A real embedding job long enough to watch: cancelling it mid-run."""

from __future__ import annotations

import time
import uuid

import pytest


@pytest.fixture()
def settings_overrides():
    return {"max_examples": 120, "embed_batch_size": 2, "job_progress_interval_s": 0.05}


def _slow_task(upload, make_rows, headers, name, offset):
    rows = make_rows(120, offset=offset, vocabulary=10)
    response = upload(headers, name, rows=rows)
    assert response.status_code == 201, response.text
    return response.json()


def test_cancel_reaches_a_running_job(client, keys, upload, make_rows, wait_job):
    # A name never used before: embeddings are cached by a hash that includes it.
    task = _slow_task(upload, make_rows, keys.alice, f"slow-{uuid.uuid4().hex[:8]}", 3)
    job_id = task["embedding"]["job_id"]
    deadline = time.monotonic() + 60
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=keys.alice).json()
        if job["state"] == "running" and job["step"] >= 2:
            break
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=keys.alice)
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    job = wait_job(job_id, keys.alice)
    assert job["state"] == "cancelled", job
    assert job["progress"] < 100.0
    read = client.get(f"/v1/tasks/{task['id']}", headers=keys.alice).json()
    assert read["embedding"]["state"] == "cancelled" and read["status"] == "failed"
    assert (
        client.get(f"/v1/tasks/{task['id']}/recommendations", headers=keys.alice).status_code == 409
    )


def test_progress_weighs_stages_by_their_size():
    from service.jobs.runner import stage_fraction

    # a 10,000-row source stage, then per seed a 600-example baseline and transfer (one seed)
    weights = [10_000.0, 600.0, 600.0]
    assert stage_fraction(1, 0.5, 3, weights) == pytest.approx(5_000 / 11_200)
    assert stage_fraction(2, 0.0, 3, weights) == pytest.approx(10_000 / 11_200)  # not 33%
    assert stage_fraction(3, 1.0, 3, weights) == pytest.approx(1.0)
    assert stage_fraction(2, 0.5, 4) == pytest.approx(1.5 / 4)  # no sizes: stages alike
    assert stage_fraction(5, 0.0, 3, weights) == pytest.approx(4 / 5)  # more stages than said
