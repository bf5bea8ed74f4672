"""Batches: many tasks at once (all or nothing), or a source × target sweep; followed and cancelled
as one. No worker runs here: the test runs the child jobs it wants to see finish."""

from __future__ import annotations

import json

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


def _events(client, url: str, headers) -> list[tuple[str, dict]]:
    events, event = [], None
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line.split(":", 1)[1])))
    return events


def _sweep_tasks(client, keys, make_rows) -> list[int]:
    ids = []
    for i in range(3):
        body = _task(f"s{i}", make_rows(12, i), validation=make_rows(4, i))
        ids.append(client.post("/v1/tasks", json=body, headers=keys.alice).json()["id"])
    return ids


def test_sweep_is_one_job_with_a_run_per_pair_and_cancels_together(client, keys, make_rows):
    ids = _sweep_tasks(client, keys, make_rows)
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
    (sweep,) = [j for j in batch["jobs"] if j["kind"] == "sweep"]
    assert len(sweep["config"]["pairs"]) == 3 and sweep["config"]["transfer"]["seeds"] == [0, 1]
    run = client.get(f"/v1/transfers/{batch['transfer_ids'][0]}", headers=keys.alice).json()
    assert run["job_id"] == sweep["id"]
    cancelled = client.post(f"/v1/batches/{batch['id']}/cancel", headers=keys.alice).json()
    assert cancelled["state"] == "cancelled" and cancelled["counts"]["cancelled"] == 1
    foreign = {"kind": "sweep", "sources": ids[:1], "targets": ids[1:2]}
    assert client.post("/v1/batches", json=foreign, headers=keys.bob).status_code == 404
    # Every strategy sweeps: the sweep job carries it
    adapter = {**body, "transfer": {"strategy": "adapter", "adapter": {"rank": 4}}}
    accepted = client.post("/v1/batches", json=adapter, headers=keys.alice)
    assert accepted.status_code == 201, accepted.text
    (job,) = [j for j in accepted.json()["jobs"] if j["kind"] == "sweep"]
    assert job["config"]["transfer"]["strategy"] == "adapter"
    assert job["config"]["transfer"]["adapter"]["rank"] == 4
    client.post(f"/v1/batches/{accepted.json()['id']}/cancel", headers=keys.alice)
    for dropped in (
        {"strategy": "joint", "mixing": {"strategy": "weights", "weights": {"a": 0.5}}},
        {"target_train": {"layer_lr_decay": 0.9}, "source_train": {"layer_lr_decay": 0.9}},
    ):
        refused = client.post("/v1/batches", json={**body, "transfer": dropped}, headers=keys.alice)
        assert refused.status_code == 422, dropped
    # One batch size for both stages: a different source one is refused, not silently dropped.
    split = {**body, "transfer": {"source_train": {"batch_size": 8}}}
    refused = client.post("/v1/batches", json=split, headers=keys.alice)
    assert refused.status_code == 422
    assert "transfer.source_train.batch_size must equal" in refused.text


def _runs(client, keys, batch) -> list[tuple[list[int], int]]:
    """Each run of the batch as (its source ids, its target id)."""
    runs = [
        client.get(f"/v1/transfers/{i}", headers=keys.alice).json() for i in batch["transfer_ids"]
    ]
    return [([s["id"] for s in run["sources"]], run["target"]["id"]) for run in runs]


def test_a_fusion_sweep_is_one_run_per_target_over_every_other_source(
    client, keys, make_rows, settings
):
    ids = _sweep_tasks(client, keys, make_rows)
    train = {"epochs": 1, "batch_size": 4, "max_steps": 2}
    transfer = {"strategy": "fusion", "seeds": [0, 1], "adapter": {"rank": 4}}
    transfer |= {"train_n": 8, "eval_n": 4, "max_length": 24}
    transfer |= {"source_train": train, "target_train": train}
    # ids[1] would fuse ids[0] alone (never itself): fusion needs two adapters to choose among
    body = {"kind": "sweep", "sources": ids[:2], "targets": ids[1:], "transfer": transfer}
    refused = client.post("/v1/batches", json=body, headers=keys.alice)
    assert refused.status_code == 422
    assert f"target task {ids[1]} has 1 source(s) besides itself" in refused.text
    body["targets"] = ids[2:]
    response = client.post("/v1/batches", json=body, headers=keys.alice)
    assert response.status_code == 201, response.text
    batch = response.json()
    assert _runs(client, keys, batch) == [(ids[:2], ids[2])]  # both, in the order given
    (sweep,) = [j for j in batch["jobs"] if j["kind"] == "sweep"]
    assert sweep["config"]["transfer"]["strategy"] == "fusion"

    assert JobRunner(client.app.state.context, "test").run(sweep["id"]) == "succeeded"
    for run_id in batch["transfer_ids"]:
        result = client.get(f"/v1/transfers/{run_id}", headers=keys.alice).json()["result"]
        assert len(result["gain"]["values"]) == 2  # both seeds stored on the target's run
    folder = settings.artifacts_dir / "sweeps" / f"batch-{batch['id']}"
    lines = (folder / "results.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [f"s0@{ids[0]}+s1@{ids[1]}"] * 2
    adapters = list((settings.checkpoints_dir / "adapters").glob("*/adapter.json"))
    assert len(adapters) == 2  # one per source, fused into every run that needs it


def test_sweep_job_trains_each_source_once_and_stores_every_pair(client, keys, make_rows, settings):
    ids = _sweep_tasks(client, keys, make_rows)
    train = {"epochs": 1, "batch_size": 4, "max_steps": 2}
    transfer = {"seeds": [0, 1], "train_n": 8, "eval_n": 4, "max_length": 24}
    transfer |= {"source_train": train, "target_train": train}
    body = {"kind": "sweep", "sources": ids[:2], "targets": ids[1:], "transfer": transfer}
    batch = client.post("/v1/batches", json=body, headers=keys.alice).json()
    job_id = batch["jobs"][0]["id"]
    assert JobRunner(client.app.state.context, "test").run(job_id) == "succeeded"
    done = client.get(f"/v1/batches/{batch['id']}", headers=keys.alice).json()
    assert done["state"] == "succeeded" and done["progress"] == 100.0
    for run_id in batch["transfer_ids"]:
        run = client.get(f"/v1/transfers/{run_id}", headers=keys.alice).json()
        result = run["result"]
        assert len(result["gain"]["values"]) == 2
        pairs = zip(result["transfer"]["values"], result["baseline"]["values"], strict=True)
        assert result["gain"]["values"] == pytest.approx([t - b for t, b in pairs])
    events = _events(client, f"/v1/batches/{batch['id']}/events", keys.alice)
    assert events[0][0] == "progress" and events[0][1]["state"] == "succeeded"
    assert events[-1] == ("end", {"id": batch["id"], "state": "succeeded"})
    assert client.get(f"/v1/batches/{batch['id']}/events", headers=keys.bob).status_code == 404
    folder = settings.artifacts_dir / "sweeps" / f"batch-{batch['id']}"
    checkpoints = settings.checkpoints_dir
    saved = {p.name: p.stat().st_ino for p in checkpoints.iterdir()}
    assert len(saved) == 2  # one per source, not per pair
    lines = (folder / "results.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * 2  # header + pairs × seeds
    pinned = json.loads((folder / "results.sweep.json").read_text())
    assert pinned["features"]["max_length"] == 24 and pinned["batch_size"] == 4

    # A later batch over the same sources reuses their checkpoints rather than training again.
    again = {**body, "targets": ids[:1]}
    second = client.post("/v1/batches", json=again, headers=keys.alice).json()
    assert JobRunner(client.app.state.context, "test").run(second["jobs"][0]["id"]) == "succeeded"
    assert {p.name: p.stat().st_ino for p in checkpoints.iterdir()} == saved
