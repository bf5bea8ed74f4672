"""Submitting tasks: accepted whole (201) or rejected whole (4xx) with nothing left behind."""

from __future__ import annotations

import json
import time

import pytest


def test_multipart_upload_is_accepted_and_embedded(client, keys, upload, wait_job, make_rows):
    validation = make_rows(8, offset=1)
    response = upload(keys.alice, "sentiment", validation=validation)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["name"] == "sentiment"
    assert task["counts"] == {"train": 24, "validation": 8}
    assert task["label_distribution"] == {"pos": 12, "neg": 12}
    assert [f["split"] for f in task["files"]] == ["train", "validation"]
    assert task["embedding"]["state"] in ("queued", "running")
    job = wait_job(task["embedding"]["job_id"], keys.alice)
    assert job["state"] == "succeeded", job
    assert job["progress"] == 100.0
    assert job["timings"]["run_s"] > 0  # (stages: empty when the shared cache already had it)
    read = client.get(f"/v1/tasks/{task['id']}", headers=keys.alice).json()
    assert read["status"] == "ready"
    assert read["embedding"]["state"] == "ready"
    assert read["embedding"]["methods"] == ["semb", "taskemb", "textemb"]
    embeddings = client.get(f"/v1/tasks/{task['id']}/embeddings", headers=keys.alice).json()
    taskemb = next(e for e in embeddings if e["method"] == "taskemb")
    assert taskemb["components"]["cls"] == 32 and taskemb["num_examples"] == 16


def test_csv_and_tsv_uploads(client, keys):
    csv_body = b'sentence,label\n"a good film",pos\nbad film,neg\nfine film,pos\nawful,neg\n'
    response = client.post(
        "/v1/tasks",
        data={
            "name": "csv_task",
            "type": "classification",
            "labels": "neg, pos",
            "fields": json.dumps({"text": "sentence"}),
        },
        files={"train": ("data.csv", csv_body, "text/csv")},
        headers=keys.alice,
    )
    assert response.status_code == 201, response.text
    assert response.json()["counts"] == {"train": 4}
    tsv_body = b"text\tlabel\nx y\t1.5\nz w\t2.5\n"
    response = client.post(
        "/v1/tasks",
        data={"name": "tsv_task", "type": "regression", "metric": "pearson"},
        files={"train": ("upload", tsv_body, "text/tab-separated-values")},
        headers=keys.alice,
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["files"][0]["format"] == "tsv"
    assert task["label_distribution"] == {"min": 1.5, "max": 2.5, "mean": 2.0}


def test_a_file_input_left_blank_is_no_file(client, keys, make_rows):
    rows = "".join(json.dumps(r) + "\n" for r in make_rows(12))
    fields = {"name": "blank_validation", "type": "classification", "labels": "neg,pos"}
    parts = [f'Content-Disposition: form-data; name="{k}"\r\n\r\n{v}' for k, v in fields.items()]
    parts.append(
        'Content-Disposition: form-data; name="train"; filename="train.jsonl"\r\n'
        f"Content-Type: application/jsonl\r\n\r\n{rows}"
    )
    parts.append(  # what a browser sends for an optional file input nobody filled
        'Content-Disposition: form-data; name="validation"; filename=""\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    body = "".join(f"--b0undary\r\n{part}\r\n" for part in parts) + "--b0undary--\r\n"
    headers = {**keys.alice, "Content-Type": "multipart/form-data; boundary=b0undary"}
    response = client.post("/v1/tasks", content=body.encode(), headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["counts"] == {"train": 12}


def test_json_body_with_rows(client, keys, make_rows):
    body = {
        "name": "rows_task",
        "type": "classification",
        "labels": ["neg", "pos"],
        "train": make_rows(10),
        "validation": make_rows(4, 2),
    }
    response = client.post("/v1/tasks", json=body, headers=keys.alice)
    assert response.status_code == 201, response.text
    assert response.json()["source"] == "rows"
    assert response.json()["counts"] == {"train": 10, "validation": 4}


def test_broken_jsonl_lists_every_problem_and_leaves_nothing(
    client, keys, to_jsonl, make_rows, table_counts, stored_files
):
    before = table_counts()
    rows = (
        to_jsonl(make_rows(3))
        + b"{not json\n"
        + to_jsonl([{"id": "x", "text": "t", "label": "maybe"}])
    )
    response = client.post(
        "/v1/tasks",
        data={"name": "broken", "type": "classification", "labels": "neg,pos"},
        files={"train": ("mine.jsonl", rows, "application/jsonl")},
        headers=keys.alice,
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "task_invalid"
    problems = {(p["file"], p["row"], p["field"]) for p in body["problems"]}
    assert ("mine.jsonl", 4, None) in problems  # 1-based line of the bad JSON
    assert ("mine.jsonl", 5, "label") in problems
    assert "unknown label 'maybe'" in json.dumps(body)
    assert table_counts() == before
    assert stored_files() == []


def test_wrong_labels_in_manifest(client, keys, upload, table_counts, stored_files):
    response = upload(keys.alice, "onelabel", labels="pos")
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["field"] == "labels" and problem["file"] is None
    assert "at least 2 different labels" in problem["message"]
    assert table_counts()["tasks"] == 0
    assert stored_files() == []


def test_unknown_task_type(client, keys, upload, table_counts, stored_files):
    response = upload(keys.alice, "weird", type="poetry")
    assert response.status_code == 422
    messages = [p["message"] for p in response.json()["problems"]]
    assert any("unknown task type 'poetry'" in m for m in messages)
    assert table_counts()["tasks"] == 0 and stored_files() == []


def test_oversize_upload_is_413(
    client, keys, settings, to_jsonl, make_rows, table_counts, stored_files
):
    big = to_jsonl(make_rows(2000))
    assert len(big) > 1024
    settings.max_upload_bytes = 1024
    response = client.post(
        "/v1/tasks",
        data={"name": "big", "type": "classification", "labels": "neg,pos"},
        files={"train": ("big.jsonl", big, "application/jsonl")},
        headers=keys.alice,
    )
    assert response.status_code == 413
    assert response.json()["error"] == "upload_too_large"
    assert table_counts()["tasks"] == 0 and stored_files() == []


def test_row_limit_is_413(client, keys, settings, upload, table_counts, stored_files, make_rows):
    settings.max_upload_rows = 10
    response = upload(keys.alice, "many")  # refused while streaming, before any parsing
    assert response.status_code == 413
    assert "more than 10 rows (the limit)" in response.json()["message"]
    assert table_counts()["tasks"] == 0 and stored_files() == []
    body = {"name": "many", "type": "classification", "labels": ["neg", "pos"]}
    rows = client.post("/v1/tasks", json=body | {"train": make_rows(24)}, headers=keys.alice)
    assert rows.status_code == 413 and "24 rows exceed the limit of 10" in rows.json()["message"]


def test_a_million_tiny_rows_are_refused_as_they_stream(client, keys, settings, stored_files):
    settings.max_upload_rows = 1_000_000
    line = b'{"id":"r","text":"a","label":"pos"}\n'
    started = time.perf_counter()
    response = client.post(
        "/v1/tasks",
        data={"name": "flood", "type": "classification", "labels": "neg,pos"},
        files={"train": ("train.jsonl", line * 1_000_005, "application/jsonl")},
        headers=keys.alice,
    )
    assert response.status_code == 413 and "more than 1000000 rows" in response.json()["message"]
    assert time.perf_counter() - started < 10  # counted, never parsed
    assert stored_files() == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/plain", b"hello"), ("application/xml", b"<task/>")],
)
def test_wrong_request_content_type_is_415(client, keys, content_type, body, table_counts):
    response = client.post(
        "/v1/tasks", content=body, headers={**keys.alice, "Content-Type": content_type}
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert table_counts()["tasks"] == 0


def test_wrong_file_type_is_415(client, keys, table_counts, stored_files):
    response = client.post(
        "/v1/tasks",
        data={"name": "xlsx", "type": "classification", "labels": "neg,pos"},
        files={"train": ("train.xlsx", b"PK\x03\x04", "application/vnd.ms-excel")},
        headers=keys.alice,
    )
    assert response.status_code == 415
    assert "train.xlsx" in response.json()["message"]
    assert table_counts()["tasks"] == 0 and stored_files() == []


def test_path_traversal_file_name_is_neutralised(client, keys, to_jsonl, make_rows, settings):
    response = client.post(
        "/v1/tasks",
        data={"name": "sneaky", "type": "classification", "labels": "neg,pos"},
        files={"train": ("../../../../etc/passwd.jsonl", to_jsonl(make_rows(6)), "text/plain")},
        headers=keys.alice,
    )
    assert response.status_code == 201, response.text
    file = response.json()["files"][0]
    assert file["filename"] == "passwd.jsonl"
    stored = list((settings.artifacts_dir / "tasks").rglob("*.jsonl"))
    assert [p.name for p in stored] == ["train.jsonl"]
    assert all(settings.artifacts_dir in p.parents for p in stored)


def test_duplicate_name_is_409(client, keys, upload):
    assert upload(keys.alice, "twice").status_code == 201
    response = upload(keys.alice, "twice")
    assert response.status_code == 409
    assert response.json()["error"] == "task_name_taken"
    assert upload(keys.bob, "twice").status_code == 201  # names are per owner


def test_list_paginates_and_filters(client, keys, upload, make_rows):
    for i in range(3):
        assert upload(keys.alice, f"t{i}").status_code == 201
    regression = [{"id": str(i), "text": f"x {i}", "label": float(i)} for i in range(5)]
    response = client.post(
        "/v1/tasks",
        json={"name": "reg", "type": "regression", "metric": "pearson", "train": regression},
        headers=keys.alice,
    )
    assert response.status_code == 201
    page = client.get("/v1/tasks?limit=2&offset=1", headers=keys.alice).json()
    assert page["total"] == 4 and [t["name"] for t in page["items"]] == ["t1", "t2"]
    only = client.get("/v1/tasks?type=regression", headers=keys.alice).json()
    assert [t["name"] for t in only["items"]] == ["reg"]
    bad = client.get("/v1/tasks?type=poetry", headers=keys.alice)
    assert bad.status_code == 422


def test_delete_removes_rows_and_files(client, keys, ready_task, table_counts, stored_files):
    task = ready_task(keys.alice, "gone")
    assert stored_files()
    response = client.delete(f"/v1/tasks/{task['id']}", headers=keys.alice)
    assert response.status_code == 204
    assert client.get(f"/v1/tasks/{task['id']}", headers=keys.alice).status_code == 404
    counts = table_counts()
    assert counts["tasks"] == 0 and counts["embeddings"] == 0 and counts["task_files"] == 0
    assert stored_files() == []
