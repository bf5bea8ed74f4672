"""A real embedding job long enough to watch: SSE progress events, and cancelling it mid-run."""

from __future__ import annotations

import json
import time

import pytest


@pytest.fixture()
def settings_overrides():
    # The stream polls far more often than the job reports, so a fast machine still shows the
    # intermediate steps instead of jumping from 0 to 100.
    return {
        "max_examples": 120,
        "embed_batch_size": 2,
        "job_progress_interval_s": 0.05,
        "sse_poll_interval_s": 0.01,
    }


def _slow_task(upload, make_rows, headers, name, offset):
    rows = make_rows(120, offset=offset, vocabulary=10)
    response = upload(headers, name, rows=rows)
    assert response.status_code == 201, response.text
    return response.json()


def test_cancel_reaches_a_running_job(client, keys, upload, make_rows, wait_job):
    offset = int(time.time() * 1000) % 10_000  # data never seen before: no cache hit
    task = _slow_task(upload, make_rows, keys.alice, "slow", offset)
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


def test_sse_stream_reports_progress_until_the_end(client, keys, upload, make_rows):
    offset = int(time.time() * 1000) % 10_000 + 20_000
    task = _slow_task(upload, make_rows, keys.alice, "watched", offset)
    job_id = task["embedding"]["job_id"]
    events = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=keys.alice) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line.split(":", 1)[1])))
                if event == "end":
                    break
    progress = [data["progress"] for kind, data in events if kind == "progress"]
    assert events[-1] == ("end", {"id": job_id, "state": "succeeded"})
    assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] == 100.0
    stages = {data["stage"] for kind, data in events if kind == "progress" and data["stage"]}
    assert any(s.startswith("textemb:") for s in stages)
    assert any(s.startswith("taskemb:") for s in stages)
