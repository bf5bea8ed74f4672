"""Tasks from Hugging Face datasets: a save_to_disk folder at once, a Hub dataset in a job.

There is no network here: Hub tests point the loader at a local copy (``monkeypatch``), so the
job runs exactly as it would after a download.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, disable_progress_bars

from service.tasks import hf

FEATURES = Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"])})


def _split(rows: list[dict], unlabelled: bool = False) -> Dataset:
    columns = {
        "sentence": [r["text"] for r in rows],
        "label": [-1 if unlabelled else FEATURES["label"].str2int(r["label"]) for r in rows],
    }
    return Dataset.from_dict(columns, features=FEATURES)


@pytest.fixture()
def saved(settings, make_rows):
    """Save a DatasetDict (train, validation, dev and an unlabelled test) under the library
    root; returns its absolute path."""
    disable_progress_bars()

    def save(name: str = "sst", root: Path | None = None) -> str:
        folder = (root or settings.tasks_root / "datasets") / name
        DatasetDict(
            {
                "train": _split(make_rows(24)),
                "validation": _split(make_rows(8, 3)),
                "dev": _split(make_rows(6, 1)),
                "test": _split(make_rows(5, 2), unlabelled=True),  # GLUE-style: labels -1
            }
        ).save_to_disk(folder)
        return str(folder)

    return save


def _body(path: str, name: str = "sst_hf", **hf_fields) -> dict:
    return {
        "name": name,
        "type": "classification",
        "metric": "accuracy",
        "hf": {"path": path, "fields": {"text": "sentence"}, **hf_fields},
    }


def test_saved_dataset_becomes_a_task_at_once(client, keys, saved, wait_job):
    path = saved()
    body = _body(path, split_map={"train": "train", "validation": "dev"})
    response = client.post("/v1/tasks", json=body, headers=keys.alice)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["source"] == "hf"
    assert task["labels"] == ["neg", "pos"]  # from the ClassLabel: none were given
    assert task["counts"] == {"train": 24, "validation": 6}
    assert {f["filename"] for f in task["files"]} == {f"{path}[train]", f"{path}[dev]"}
    assert sum(task["label_distribution"].values()) == 24
    # The stored files read back like an upload: the embedding job loads and embeds them.
    assert wait_job(task["embedding"]["job_id"], keys.alice)["state"] == "succeeded"


def test_default_splits_are_train_and_validation(client, keys, saved):
    body = {**_body(saved()), "labels": "neg,pos"}
    response = client.post("/v1/tasks", json=body, headers=keys.alice)
    assert response.status_code == 201, response.text  # the unlabelled test split is not read
    assert response.json()["counts"] == {"train": 24, "validation": 8}


@pytest.mark.parametrize(
    ("case", "status", "expected"),
    [
        ("outside_roots", 403, "is not under a library root"),
        ("missing_folder", 422, "no folder"),
        ("not_a_dataset", 422, "holds no dataset saved with save_to_disk"),
        ("unknown_split", 422, "no split 'dev2'"),
        ("wrong_labels", 422, "unknown label"),
        ("unknown_type", 422, "unknown task type 'poetry'"),
        ("rows_and_hf", 422, "Extra inputs are not permitted"),
        ("bad_hub_id", 422, "neither a Hub dataset id"),
    ],
)
def test_rejected_dataset_leaves_nothing(
    client, keys, saved, settings, tmp_path, table_counts, stored_files, case, status, expected
):
    path = saved()
    body = _body(path)
    if case == "outside_roots":
        body = _body(saved(root=tmp_path / "elsewhere"))
    elif case == "missing_folder":
        body = _body(str(settings.tasks_root / "datasets" / "nothing"))
    elif case == "not_a_dataset":
        (settings.tasks_root / "empty").mkdir()
        body = _body(str(settings.tasks_root / "empty"))
    elif case == "unknown_split":
        body = _body(path, split_map={"train": "dev2"})
    elif case == "wrong_labels":
        body["labels"] = ["bad", "good"]  # the ClassLabel names are neg, pos
    elif case == "unknown_type":
        body["type"] = "poetry"
    elif case == "rows_and_hf":
        body["train"] = [{"id": "1", "text": "a", "label": "pos"}]
    elif case == "bad_hub_id":
        body = _body("not a dataset id!")
    before = table_counts()
    response = client.post("/v1/tasks", json=body, headers=keys.alice)
    assert response.status_code == status, response.text
    assert expected in response.text
    assert table_counts() == before
    assert stored_files() == []


def test_wrong_rows_are_listed_with_their_row(client, keys, saved):
    path = saved()
    response = client.post(
        "/v1/tasks", json={**_body(path), "labels": ["bad", "good"]}, headers=keys.alice
    )
    problems = response.json()["problems"]
    assert (f"{path}[train]", 1, "label") in {(p["file"], p["row"], p["field"]) for p in problems}


def test_row_limit_is_checked_before_loading(
    client, keys, saved, settings, monkeypatch, table_counts, stored_files
):
    settings.max_upload_rows = 10
    monkeypatch.setattr(hf, "load_hf_dataset", _never)
    response = client.post("/v1/tasks", json=_body(saved()), headers=keys.alice)
    assert response.status_code == 413
    assert "32 rows exceed the limit of 10" in response.json()["message"]
    assert table_counts()["tasks"] == 0 and stored_files() == []


def _never(*args, **kwargs):
    raise AssertionError("the dataset should not have been loaded")


# --- Hub datasets: loaded by an import job -------------------------------------------------


@pytest.fixture()
def hub(monkeypatch, saved):
    """Serve Hub id -> a local copy through the real loader; records what it was asked."""
    copies: dict[str, str] = {}
    calls: list[dict] = []
    real = hf.load_hf_dataset

    def load_from_hub(name, **kwargs):
        calls.append({"name": name, **kwargs})
        return real(copies[name], **kwargs)

    monkeypatch.setattr(hf, "load_hf_dataset", load_from_hub)
    monkeypatch.setattr(hf, "hub_split_names", lambda name, config: ["train", "validation"])

    def publish(hub_id: str) -> str:
        copies[hub_id] = saved(hub_id.replace("/", "__"))
        return hub_id

    publish.calls = calls
    return publish


def test_hub_dataset_is_loaded_by_a_job(client, keys, hub, wait_job):
    hub_id = hub("org/sst")
    body = _body(hub_id, config="default")
    response = client.post("/v1/tasks", json=body, headers=keys.alice)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "import" and job["task_id"] is None
    done = wait_job(job["id"], keys.alice)
    assert done["state"] == "succeeded", done
    assert done["task_id"] == done["result"]["task_id"]
    task = client.get(f"/v1/tasks/{done['task_id']}", headers=keys.alice).json()
    assert task["name"] == "sst_hf" and task["source"] == "hf"
    assert task["counts"] == {"train": 24, "validation": 8}
    assert task["embedding"]["job_id"] is not None  # its embedding starts as for an upload
    assert hub.calls[0]["name"] == "org/sst" and hub.calls[0]["config"] == "default"
    assert hub.calls[0]["split_map"] == {"train": "train", "validation": "validation"}


def test_rejected_hub_dataset_fails_its_job_and_leaves_no_task(
    client, keys, hub, wait_job, table_counts, stored_files
):
    before = table_counts()
    body = {**_body(hub("org/sst")), "labels": ["bad", "good"]}
    response = client.post("/v1/tasks", json=body, headers=keys.alice)
    assert response.status_code == 202, response.text
    done = wait_job(response.json()["id"], keys.alice)
    assert done["state"] == "failed" and done["task_id"] is None
    assert "the dataset was rejected" in done["error"]
    # (the file is the local copy the fake Hub served; from the Hub it reads org/sst[train])
    assert "[train], row 1, label: unknown label 'pos'" in done["error"]
    after = table_counts()
    assert after["jobs"] == before["jobs"] + 1  # the job keeps the error; nothing else stays
    assert {k: v for k, v in after.items() if k != "jobs"} == {
        k: v for k, v in before.items() if k != "jobs"
    }
    assert stored_files() == []


def test_hub_reference_is_checked_before_its_job(client, keys, hub, upload, table_counts, wait_job):
    first = upload(keys.alice, "taken")
    assert first.status_code == 201
    wait_job(first.json()["embedding"]["job_id"], keys.alice)  # its rows land before the count
    before = table_counts()
    taken = client.post("/v1/tasks", json=_body(hub("org/a"), "taken"), headers=keys.alice)
    assert taken.status_code == 409
    bad_type = client.post(
        "/v1/tasks", json={**_body(hub("org/b")), "type": "poetry"}, headers=keys.alice
    )
    assert bad_type.status_code == 422 and "unknown task type" in bad_type.text
    assert table_counts() == before  # no job was queued
    assert hub.calls == []


def test_one_shot_does_not_load_hub_datasets(client, keys, hub, table_counts, stored_files):
    before = table_counts()
    response = client.post(
        "/v1/recommendations?wait=0", json=_body(hub("org/sst")), headers=keys.alice
    )
    assert response.status_code == 422
    assert "POST /v1/tasks loads it in a job" in response.json()["message"]
    assert table_counts() == before and stored_files() == []
