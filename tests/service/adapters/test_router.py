"""The adapter backfill: admins queue library tasks' adapters as one backfill job, below owners'
jobs, trained as a default adapter transfer's source stage, which then finds them stored; the
deployment may queue them as tasks are registered."""

from __future__ import annotations

import json

import pytest

FAST = {"epochs": 1, "batch_size": 8, "max_steps": 2}
# What a request that leaves sizes unset gets, here tiny: the backfill trains with these too
SMALL = {"transfer_max_steps": 2, "transfer_source_max_examples": 16, "transfer_eval_n": 6}


@pytest.fixture()
def settings_overrides(request):
    return {**SMALL, **getattr(request, "param", {})}


@pytest.fixture()
def library_task(client, keys, ready_task, make_rows):
    task = ready_task(keys.admin, "source", offset=1, vocabulary=10, validation=make_rows(6, 3))
    assert client.put(f"/v1/library/{task['id']}", headers=keys.admin).status_code == 200
    return task


@pytest.fixture()
def task_folder(settings, make_rows, to_jsonl):
    """A classification task folder under the tasks root (20 training rows)."""

    def write(name: str, offset: int):
        folder = settings.tasks_root / name
        folder.mkdir(parents=True)
        manifest = {"name": name, "type": "classification", "labels": ["neg", "pos"]}
        (folder / "task.json").write_text(json.dumps({**manifest, "metric": "accuracy"}))
        (folder / "train.jsonl").write_bytes(to_jsonl(make_rows(20, offset, 8)))
        (folder / "validation.jsonl").write_bytes(to_jsonl(make_rows(6, offset + 1)))
        return folder

    return write


def _backfill(client, headers, **body):
    return client.post("/v1/adapters/backfill", json=body or None, headers=headers)


def test_a_default_adapter_transfer_finds_the_backfilled_adapter_stored(
    client, keys, library_task, ready_task, make_rows, wait_job
):
    assert _backfill(client, keys.alice).status_code == 403
    response = _backfill(client, keys.admin)
    assert response.status_code == 202, response.text
    queued = response.json()
    assert (queued["kind"], queued["queue"], queued["priority"]) == ("adapters", "backfill", -10)
    job = wait_job(queued["id"], keys.admin, timeout=180)
    assert job["state"] == "succeeded", job
    assert job["progress"] == 100.0 and list(job["timings"]["stages"]) == ["adapter:source"]
    assert (job["result"]["trained"], job["result"]["stored"]) == (["source"], [])
    [adapter] = client.get("/v1/adapters", headers=keys.admin).json()["items"]
    assert (adapter["task"], adapter["rows"]) == ("source", 16)  # the deployment's source size

    again = wait_job(_backfill(client, keys.admin).json()["id"], keys.admin)  # nothing to train
    assert (again["result"]["trained"], again["result"]["stored"]) == ([], ["source"])
    assert client.get("/v1/adapters", headers=keys.admin).json()["total"] == 1

    target = ready_task(keys.alice, "target", offset=2, validation=make_rows(6, 4))
    body = {
        "target_task_id": target["id"],
        "sources": [library_task["id"]],
        "strategy": "adapter",
        "train_n": 16,
        "target_train": FAST,
    }
    response = client.post("/v1/transfers", json=body, headers=keys.alice)
    assert response.status_code == 202, response.text
    run = response.json()
    assert wait_job(run["job_id"], keys.alice, timeout=180)["state"] == "succeeded"
    stages = client.get(f"/v1/transfers/{run['id']}", headers=keys.alice).json()["result"]
    source = stages["stages"][0]
    assert (source["kind"], source["cached"]) == ("source", True)
    assert source["seconds"] == pytest.approx(adapter["seconds"], abs=0.01)


def test_the_tasks_named_must_be_library_tasks_that_can_be_sources(
    client, keys, ready_task, make_rows
):
    empty = _backfill(client, keys.admin)
    assert empty.status_code == 409 and empty.json()["error"] == "no_adapters_to_train"
    mine = ready_task(keys.alice, "mine", validation=make_rows(6, 1))
    response = _backfill(client, keys.admin, task_ids=[mine["id"], 9999])
    assert response.status_code == 422, response.text
    messages = [p["message"] for p in response.json()["problems"]]
    assert messages == [
        f"task {mine['id']} is not a library task",
        "task 9999 is not a library task",
    ]
    assert _backfill(client, keys.admin, task_ids=[]).status_code == 422
    jobs = client.get("/v1/jobs?kind=adapters", headers=keys.admin).json()
    assert jobs["total"] == 0


@pytest.mark.parametrize(
    "settings_overrides", [{"adapter_backfill_on_register": True}], indirect=True
)
def test_registered_library_tasks_get_their_adapters_as_backfill(
    client, keys, task_folder, wait_job
):
    folder = task_folder("alpha", 1)
    response = client.post("/v1/library/folders", json={"path": str(folder)}, headers=keys.admin)
    assert response.status_code == 201, response.text
    [task] = response.json()
    [job] = client.get("/v1/jobs?kind=adapters", headers=keys.admin).json()["items"]
    # after the library's embeddings (-11 at the lowest), which recommendations need
    assert (job["task_id"], job["queue"], job["priority"]) == (task["id"], "backfill", -12)
    assert wait_job(job["id"], keys.admin, timeout=180)["state"] == "succeeded"
    [adapter] = client.get("/v1/adapters", headers=keys.admin).json()["items"]
    assert (adapter["task"], adapter["rows"]) == ("alpha", 16)


@pytest.mark.parametrize(
    "settings_overrides", [{"adapter_backfill_on_register": True}], indirect=True
)
def test_a_promoted_task_gets_its_adapter_as_backfill_too(
    client, keys, ready_task, make_rows, wait_job
):
    task = ready_task(keys.alice, "promoted", offset=1, validation=make_rows(6, 3))
    assert client.get("/v1/jobs?kind=adapters", headers=keys.admin).json()["total"] == 0
    assert client.put(f"/v1/library/{task['id']}", headers=keys.admin).status_code == 200
    [job] = client.get("/v1/jobs?kind=adapters", headers=keys.admin).json()["items"]
    assert (job["task_id"], job["queue"]) == (task["id"], "backfill")
    assert wait_job(job["id"], keys.admin, timeout=180)["state"] == "succeeded"
    [adapter] = client.get("/v1/adapters", headers=keys.admin).json()["items"]
    assert adapter["task"] == "promoted"


def test_registering_queues_no_adapters_by_default(client, keys, task_folder):
    folder = task_folder("beta", 2)
    response = client.post("/v1/library/folders", json={"path": str(folder)}, headers=keys.admin)
    assert response.status_code == 201, response.text
    assert client.get("/v1/jobs?kind=adapters", headers=keys.admin).json()["total"] == 0


def test_a_task_that_fails_does_not_stop_the_others(client, keys, task_folder, wait_job):
    for name, offset in (("alpha", 1), ("beta", 2)):
        folder = task_folder(name, offset)
        response = client.post(
            "/v1/library/folders", json={"path": str(folder)}, headers=keys.admin
        )
        assert response.status_code == 201, response.text
    (folder.parent / "alpha" / "train.jsonl").write_text("not json\n")  # broken since
    job = wait_job(_backfill(client, keys.admin).json()["id"], keys.admin, timeout=180)
    assert job["state"] == "failed" and job["attempts"] == 1
    assert "1 of 2 adapters not trained, the others are stored: alpha: " in job["error"]
    [adapter] = client.get("/v1/adapters", headers=keys.admin).json()["items"]
    assert adapter["task"] == "beta"
