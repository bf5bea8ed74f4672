"""Before embeddings exist: 409 with a clear message; a partly embedded library is ranked and
the response says how much of it was ready. Jobs run here only when the test runs them."""

from __future__ import annotations

import pytest

from service.jobs.runner import JobRunner


@pytest.fixture()
def settings_overrides():
    return {"embedded_workers": 0}


@pytest.fixture()
def run_job(client):
    def run(job_id: int) -> str:
        context = client.app.state.context
        return JobRunner(context, "test").run(job_id)

    return run


def test_409_until_the_target_is_embedded(client, keys, upload, run_job):
    task = upload(keys.alice, "pending").json()
    url = f"/v1/tasks/{task['id']}/recommendations"
    response = client.get(url, headers=keys.alice)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "embeddings_not_ready"
    assert f"job {task['embedding']['job_id']} is queued" in body["message"]
    assert run_job(task["embedding"]["job_id"]) == "succeeded"
    assert client.get(url, headers=keys.alice).status_code == 200


def test_partly_embedded_library_says_how_much_is_ready(client, keys, upload, run_job):
    target = upload(keys.alice, "target", offset=5).json()
    first = upload(keys.admin, "first", offset=1, vocabulary=10).json()
    second = upload(keys.admin, "second", offset=2, vocabulary=8).json()
    for task in (first, second):
        assert client.put(f"/v1/library/{task['id']}", headers=keys.admin).status_code == 200
    for task in (target, first):
        assert run_job(task["embedding"]["job_id"]) == "succeeded"
    body = client.get(f"/v1/tasks/{target['id']}/recommendations", headers=keys.alice).json()
    assert [r["task"] for r in body["ranking"]] == ["first"]
    assert body["library"] == {"total": 2, "ready": 1, "complete": False}
    assert "1 of 2 library tasks" in body["note"]
    assert run_job(second["embedding"]["job_id"]) == "succeeded"  # joins the index on commit
    body = client.get(f"/v1/tasks/{target['id']}/recommendations", headers=keys.alice).json()
    assert {r["task"] for r in body["ranking"]} == {"first", "second"}
    assert body["library"]["complete"] is True
