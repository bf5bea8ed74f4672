"""Transfers: a fine-tuning job whose result has per-stage metrics, baseline and gain ± std."""

from __future__ import annotations

import pytest

FAST = {"epochs": 1, "batch_size": 8, "max_steps": 2}


@pytest.fixture()
def tasks(keys, ready_task, make_rows):
    source = ready_task(keys.alice, "source", offset=1, vocabulary=10, validation=make_rows(6, 3))
    target = ready_task(keys.alice, "target", offset=2, validation=make_rows(6, 4))
    return source, target


def _run(client, headers, wait_job, body):
    response = client.post("/v1/transfers", json=body, headers=headers)
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["state"] in ("queued", "running")
    job = wait_job(run["job_id"], headers, timeout=180)
    assert job["state"] == "succeeded", job
    assert job["kind"] == "transfer" and job["progress"] == 100.0
    return client.get(f"/v1/transfers/{run['id']}", headers=headers).json()


def test_sequential_transfer_with_two_seeds(client, keys, tasks, wait_job):
    source, target = tasks
    body = {
        "target_task_id": target["id"],
        "sources": [source["id"]],
        "seeds": [0, 1],
        "regime": "limited",
        "train_n": 16,
        "max_length": 24,
        "source_train": FAST,
        "target_train": FAST,
    }
    run = _run(client, keys.alice, wait_job, body)
    job = client.get(f"/v1/jobs/{run['job_id']}", headers=keys.alice).json()
    assert job["config"]["max_length"] == 24
    assert job["config"]["target_sampling"] == "per_seed"  # the sweep's protocol
    result = run["result"]
    assert result["protocol"] == 2  # workers.transfer.TransferPlan, recorded with the run
    assert run["sources"] == [{"id": source["id"], "name": "source"}] and run["auto"] is False
    assert result["metric"] == "accuracy"
    kinds = [(s["kind"], s["seed"]) for s in result["stages"]]
    assert kinds == [
        ("source", None),
        ("baseline", 0),
        ("baseline", 1),
        ("target", 0),
        ("target", 1),
    ]
    assert result["stages"][3]["train_examples"] == {"target": 16}
    for stage in result["stages"]:  # what each stage cost besides time
        assert 0 < stage["trainable_params"] <= stage["total_params"]
        assert stage["peak_memory_mb"] is None or stage["peak_memory_mb"] > 0
    cost = result["cost"]  # the source and transfer stages, not the baseline's
    spent = [s for s in result["stages"] if s["kind"] != "baseline"]
    assert cost["seconds"] == pytest.approx(sum(s["seconds"] for s in spent), abs=0.01)
    assert cost["examples"] == sum(sum(s["train_examples"].values()) for s in spent)
    assert cost["gain_per_hour"] == pytest.approx(
        result["gain"]["mean"] / cost["seconds"] * 3600, rel=0.01, abs=1e-3
    )
    for summary in ("baseline", "transfer", "gain"):
        assert len(result[summary]["values"]) == 2
    pairs = zip(result["transfer"]["values"], result["baseline"]["values"], strict=True)
    gains = [t - b for t, b in pairs]
    assert result["gain"]["values"] == pytest.approx(gains)
    assert result["gain"]["mean"] == pytest.approx(sum(gains) / 2)
    listed = client.get("/v1/transfers", headers=keys.alice).json()
    assert [r["id"] for r in listed["items"]] == [run["id"]]
    assert client.get(f"/v1/transfers/{run['id']}", headers=keys.bob).status_code == 404


def test_multitask_transfer_with_auto_sources(client, keys, tasks, ready_task, make_rows, wait_job):
    _, target = tasks
    for name, offset in (("lib_one", 5), ("lib_two", 6)):
        task = ready_task(keys.admin, name, offset=offset, validation=make_rows(6, offset))
        assert client.put(f"/v1/library/{task['id']}", headers=keys.admin).status_code == 200
    body = {
        "target_task_id": target["id"],
        "sources": "auto",
        "k": 2,
        "strategy": "multitask",
        "mixing": {"strategy": "temperature", "temperature": 2.0},
        "train_n": 16,
        "source_train": FAST,
        "target_train": FAST,
    }
    run = _run(client, keys.alice, wait_job, body)
    assert run["auto"] is True
    assert {s["name"] for s in run["sources"]} == {"lib_one", "lib_two"}
    source_stage = run["result"]["stages"][0]
    assert source_stage["kind"] == "source" and set(source_stage["tasks"]) == {"lib_one", "lib_two"}


def test_bad_transfers_are_refused(client, keys, tasks, upload):
    source, target = tasks
    same = {"target_task_id": target["id"], "sources": [target["id"]]}
    assert client.post("/v1/transfers", json=same, headers=keys.alice).status_code == 422
    no_validation = upload(keys.alice, "noval").json()
    body = {"target_task_id": no_validation["id"], "sources": [source["id"]]}
    response = client.post("/v1/transfers", json=body, headers=keys.alice)
    assert response.status_code == 422 and "validation rows" in response.json()["message"]
    empty = {"target_task_id": target["id"], "sources": []}
    assert client.post("/v1/transfers", json=empty, headers=keys.alice).status_code == 422
    auto = {"target_task_id": target["id"], "sources": "auto"}
    response = client.post("/v1/transfers", json=auto, headers=keys.alice)
    assert response.status_code == 409 and response.json()["error"] == "no_sources"


def test_max_length_reaches_both_training_stages() -> None:
    from service.transfers.jobs import _train_config
    from service.transfers.schemas import TrainSettings

    assert _train_config(TrainSettings(), None, 24).features.max_length == 24
    assert _train_config(TrainSettings(), None, None).features.max_length == 128  # the default


def test_gradual_unfreezing_reaches_the_stage_and_other_values_are_refused(client, keys) -> None:
    from service.transfers.jobs import _train_config
    from service.transfers.schemas import TrainSettings

    assert _train_config(TrainSettings(unfreezing="gradual"), None, None).unfreezing == "gradual"
    body = {"target_task_id": 1, "sources": [2], "target_train": {"unfreezing": "sometimes"}}
    refused = client.post("/v1/transfers", json=body, headers=keys.alice)
    assert refused.status_code == 422
    assert any("unfreezing" in p["field"] for p in refused.json()["problems"])


def test_deployment_sizes_fill_what_a_request_leaves_unset(tmp_path) -> None:
    from service.settings import Settings
    from service.transfers.schemas import TrainSettings, TransferCreate
    from service.transfers.service import with_size_defaults

    settings = Settings(
        data_dir=tmp_path,
        transfer_source_max_examples=64,
        transfer_eval_n=32,
        transfer_max_steps=2,
    )
    body = TransferCreate(target_task_id=1, sources=[2], target_train=TrainSettings(max_steps=5))
    filled = with_size_defaults(body, settings)
    assert (filled.source_max_examples, filled.eval_n) == (64, 32)
    assert (filled.source_train.max_steps, filled.target_train.max_steps) == (2, 5)  # asked: kept
    assert with_size_defaults(body, Settings(data_dir=tmp_path)) == body  # unset: unchanged


def test_a_joint_transfer_runs_through_the_api(client, keys, tasks, wait_job):
    source, target = tasks
    body = {
        "target_task_id": target["id"],
        "sources": [source["id"]],
        "strategy": "joint",
        "mixing": {"strategy": "weights", "weights": {"source": 0.3}},
        "seeds": [0],
        "train_n": 16,
        "max_length": 24,
        "target_train": FAST,
    }
    run = _run(client, keys.alice, wait_job, body)
    assert run["strategy"] == "joint"
    kinds = [(s["kind"], s["tasks"]) for s in run["result"]["stages"]]
    assert kinds == [("baseline", ["target"]), ("target", ["target", "source"])]
    assert list(run["result"]["stages"][1]["metrics"]) == ["target"]


def test_adapter_transfers_reuse_the_library_adapter_which_admins_can_delete(
    client, keys, tasks, wait_job
):
    source, target = tasks
    body = {
        "target_task_id": target["id"],
        "sources": [source["id"]],
        "strategy": "adapter",
        "adapter": {"rank": 4, "transfer": "continue"},
        "seeds": [0],
        "train_n": 16,
        "max_length": 24,
        "source_train": FAST,
        "target_train": FAST,
    }
    first = _run(client, keys.alice, wait_job, body)
    assert first["config"]["adapter"]["transfer"] == "continue"
    stage = first["result"]["stages"][0]
    assert (stage["kind"], stage["cached"]) == ("source", False)
    assert 0 < stage["trainable_params"] < stage["total_params"] / 5  # the encoder stays frozen
    # The library names tasks and hashes their rows: admins only
    assert client.get("/v1/adapters", headers=keys.bob).status_code == 403
    [adapter] = client.get("/v1/adapters", headers=keys.admin).json()["items"]
    assert adapter["task"] == "source" and adapter["rows"] == stage["train_examples"]["source"]
    assert adapter["settings"]["adapter"]["rank"] == 4

    second = _run(client, keys.alice, wait_job, body)  # the source stage is the library's
    stage = second["result"]["stages"][0]
    assert stage["cached"] is True and stage["seconds"] == pytest.approx(
        adapter["seconds"], abs=0.01
    )
    cost = second["result"]["cost"]
    assert cost["cached_seconds"] == pytest.approx(adapter["seconds"], abs=0.01)
    assert cost["seconds"] < first["result"]["cost"]["seconds"]
    assert client.get("/v1/adapters?task=other", headers=keys.admin).json()["total"] == 0

    key = adapter["key"]
    assert client.delete(f"/v1/adapters/{key}", headers=keys.alice).status_code == 403
    assert client.delete(f"/v1/adapters/{key}", headers=keys.admin).status_code == 204
    assert client.delete(f"/v1/adapters/{key}", headers=keys.admin).status_code == 404
    assert client.delete("/v1/adapters/..", headers=keys.admin).status_code in (404, 422)
    assert client.get("/v1/adapters", headers=keys.admin).json()["total"] == 0


def test_fusion_runs_through_the_api_and_adapter_takes_one_source(
    client, keys, tasks, wait_job, ready_task, make_rows
):
    source, target = tasks
    other = ready_task(keys.alice, "other", offset=3, validation=make_rows(6, 4))
    lone = {"target_task_id": target["id"], "sources": [source["id"]], "strategy": "fusion"}
    refused = client.post("/v1/transfers", json=lone, headers=keys.alice)
    assert refused.status_code == 422 and "at least 2 sources" in refused.json()["message"]
    one_auto = {**lone, "sources": "auto", "k": 1}  # refused before any ranking
    refused = client.post("/v1/transfers", json=one_auto, headers=keys.alice)
    assert refused.status_code == 422 and "'auto' picks k = 1" in refused.json()["message"]
    body = {
        "target_task_id": target["id"],
        "sources": [source["id"], other["id"]],
        "strategy": "fusion",
        "adapter": {"rank": 4},
        "seeds": [0],
        "train_n": 16,
        "max_length": 24,
        "source_train": FAST,
        "target_train": FAST,
    }
    run = _run(client, keys.alice, wait_job, body)
    kinds = [s["kind"] for s in run["result"]["stages"]]
    assert kinds == ["source", "source", "baseline", "target"] and run["strategy"] == "fusion"
    two = {**body, "strategy": "adapter"}
    refused = client.post("/v1/transfers", json=two, headers=keys.alice)
    assert refused.status_code == 422 and "at most 1 source" in refused.json()["message"]
    assert client.get("/v1/transfers", headers=keys.alice).json()["total"] == 1  # nothing left
    gradual = {**body, "target_train": {**FAST, "unfreezing": "gradual"}}
    refused = client.post("/v1/transfers", json=gradual, headers=keys.alice)
    assert refused.status_code == 422 and "full-model stages" in refused.text
    bad = {**body, "adapter": {"transfer": "sideways"}}
    refused = client.post("/v1/transfers", json=bad, headers=keys.alice)
    assert refused.status_code == 422
    assert any("transfer" in p["field"] for p in refused.json()["problems"])


def test_layer_lr_decay_reaches_the_stage_and_bad_values_are_refused(client, keys) -> None:
    from service.transfers.jobs import _train_config
    from service.transfers.schemas import TrainSettings

    assert _train_config(TrainSettings(), None, None).layer_lr_decay == 1.0  # off by default
    tuned = _train_config(TrainSettings(layer_lr_decay=0.9), None, None)
    assert tuned.layer_lr_decay == 0.9
    for bad in (0, 1.5, -0.1):
        body = {"target_task_id": 1, "sources": [2], "source_train": {"layer_lr_decay": bad}}
        refused = client.post("/v1/transfers", json=body, headers=keys.alice)
        assert refused.status_code == 422, bad
        assert any("layer_lr_decay" in p["field"] for p in refused.json()["problems"])
