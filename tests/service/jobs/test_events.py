"""The SSE stream of a real embedding job, watched from before the job starts to its end."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from service.jobs.runner import JobRunner


@pytest.fixture()
def settings_overrides():
    # No embedded worker: the test starts the job itself once the stream is open, so the stream
    # sees every stage whatever the machine's speed. It polls far more often than the job
    # reports, so it sees the steps in between too.
    return {
        "embedded_workers": 0,
        "max_examples": 120,
        "embed_batch_size": 2,
        "job_progress_interval_s": 0.05,
        "sse_poll_interval_s": 0.01,
    }


def test_sse_stream_reports_progress_until_the_end(client, keys, upload, make_rows):
    # A name never used before: embeddings are cached by a hash that includes it, and the rows
    # alone repeat across tests (their offset counts modulo the vocabulary).
    name = f"watched-{uuid.uuid4().hex[:8]}"
    response = upload(keys.alice, name, rows=make_rows(120, offset=3, vocabulary=10))
    assert response.status_code == 201, response.text
    job_id = response.json()["embedding"]["job_id"]
    worker = threading.Thread(
        target=JobRunner(client.app.state.context, "test").run, args=(job_id,)
    )
    events = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=keys.alice) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line.split(":", 1)[1])))
                if event == "progress" and not worker.is_alive() and len(events) == 1:
                    worker.start()  # the stream has seen the queued job: now run it
                if event == "end":
                    break
    worker.join(timeout=60)
    progress = [data["progress"] for kind, data in events if kind == "progress"]
    assert events[0][1]["state"] == "queued"
    assert events[-1] == ("end", {"id": job_id, "state": "succeeded"})
    assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] == 100.0
    stages = {data["stage"] for kind, data in events if kind == "progress" and data["stage"]}
    assert any(s.startswith("textemb:") for s in stages)
    assert any(s.startswith("taskemb:") for s in stages)
