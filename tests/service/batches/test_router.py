"""Batches: many tasks at once (all or nothing), or a source × target sweep; followed and cancelled
as one. No worker runs here: the test runs the child jobs it wants to see finish."""

from __future__ import annotations

import pytest

from service.jobs.runner import JobRunner


@pytest.fixture()
def settings_overrides():
    return {"embedded_workers": 0}


def _task(name, rows, validation=None):
    body = {"name": name, "type": "classification", "labels": ["neg", "pos"], "train": rows}
    if validation:
        body["validation"] = validation
    return body


def test_tasks_batch_is_followed_to_the_end(client, keys, make_rows):
    body = {
        "kind": "tasks",
        "description": "three at once",
        "tasks": [_task(f"b{i}", make_rows(12, i)) for i in range(3)],
    }
    response = client.post("/v1/batches", json=body, headers=keys.alice)
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["state"] == "queued" and batch["counts"]["queued"] == 3
    assert len(batch["task_ids"]) == 3 and all(j["kind"] == "embed" for j in batch["jobs"])
    runner = JobRunner(client.app.state.context, "test")
    runner.run(batch["jobs"][0]["id"])
    partial = client.get(f"/v1/batches/{batch['id']}", headers=keys.alice).json()
    assert partial["state"] == "running" and partial["progress"] == pytest.approx(100 / 3, abs=0.1)
    for job in batch["jobs"][1:]:
        runner.run(job["id"])
    done = client.get(f"/v1/batches/{batch['id']}", headers=keys.alice).json()
    assert done["state"] == "succeeded" and done["progress"] == 100.0
    assert client.get(f"/v1/batches/{batch['id']}", headers=keys.bob).status_code == 404
    assert client.get("/v1/batches", headers=keys.alice).json()["total"] == 1


def test_one_bad_task_rejects_the_whole_batch(client, keys, make_rows, table_counts, stored_files):
    bad = [{"id": "1", "text": "x", "label": "maybe"}]
    body = {"kind": "tasks", "tasks": [_task("fine", make_rows(8)), _task("broken", bad)]}
    response = client.post("/v1/batches", json=body, headers=keys.alice)
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["file"] == "tasks[1]/train" and problem["row"] == 1
    counts = table_counts()
    assert counts["tasks"] == 0 and counts["batches"] == 0 and counts["jobs"] == 0
    assert stored_files() == []


def test_sweep_creates_one_transfer_per_pair_and_cancels_together(client, keys, make_rows):
    ids = []
    for i in range(3):
        body = _task(f"s{i}", make_rows(12, i), validation=make_rows(4, i))
        ids.append(client.post("/v1/tasks", json=body, headers=keys.alice).json()["id"])
    body = {
        "kind": "sweep",
        "sources": ids[:2],
        "targets": ids[1:],
        "transfer": {"seeds": [0, 1], "regime": "limited"},
    }
    response = client.post("/v1/batches", json=body, headers=keys.alice)
    assert response.status_code == 201, response.text
    batch = response.json()
    assert len(batch["transfer_ids"]) == 3  # (0,1) (0,2) (1,2): never a task onto itself
    transfers = [j for j in batch["jobs"] if j["kind"] == "transfer"]
    assert len(transfers) == 3 and all(j["config"]["seeds"] == [0, 1] for j in transfers)
    cancelled = client.post(f"/v1/batches/{batch['id']}/cancel", headers=keys.alice).json()
    assert cancelled["state"] == "cancelled" and cancelled["counts"]["cancelled"] == 3
    foreign = {"kind": "sweep", "sources": ids[:1], "targets": ids[1:2]}
    assert client.post("/v1/batches", json=foreign, headers=keys.bob).status_code == 404
