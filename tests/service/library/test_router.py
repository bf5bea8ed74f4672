"""The library: listed by everyone, changed only by admins; folders register from library roots."""

from __future__ import annotations

import json

import pytest


@pytest.fixture()
def task_folders(settings, make_rows, to_jsonl):
    """Two valid task folders under the tasks root, and one broken one elsewhere."""

    def write(folder, name, rows, labels=("neg", "pos")):
        folder.mkdir(parents=True)
        manifest = {
            "name": name,
            "type": "classification",
            "labels": list(labels),
            "metric": "accuracy",
        }
        (folder / "task.json").write_text(json.dumps(manifest))
        (folder / "train.jsonl").write_bytes(to_jsonl(rows))
        (folder / "validation.jsonl").write_bytes(to_jsonl(rows[:6]))

    root = settings.tasks_root
    write(root / "alpha", "alpha", make_rows(20, 1, 8))
    write(root / "beta", "beta", make_rows(20, 2, 10))
    broken = settings.data_dir.parent / "broken_root" / "broken"
    write(broken, "broken", [{"id": "1", "text": "x", "label": "maybe"}])
    return root, broken


def test_admin_registers_a_folder_of_tasks(client, keys, task_folders, wait_job):
    root, _ = task_folders
    response = client.post("/v1/library/folders", json={"path": str(root)}, headers=keys.admin)
    assert response.status_code == 201, response.text
    tasks = response.json()
    assert [t["name"] for t in tasks] == ["alpha", "beta"]
    assert all(t["is_library"] and t["source"] == "folder" for t in tasks)
    for task in tasks:
        job = wait_job(task["embedding"]["job_id"], keys.admin)
        assert job["state"] == "succeeded"
        assert (job["queue"], job["priority"]) == ("backfill", -11)  # below owners' jobs
    again = client.post(
        "/v1/library/folders", json={"path": str(root / "alpha")}, headers=keys.admin
    )
    assert [t["id"] for t in again.json()] == [tasks[0]["id"]]  # idempotent
    listed = client.get("/v1/library", headers=keys.bob).json()
    assert listed["total"] == 2
    assert {t["embedding"]["state"] for t in listed["items"]} == {"ready"}
    removed = client.delete(f"/v1/library/{tasks[0]['id']}", headers=keys.admin)
    assert removed.status_code == 204
    assert client.get("/v1/library", headers=keys.bob).json()["total"] == 1
    assert client.get(f"/v1/tasks/{tasks[0]['id']}", headers=keys.admin).status_code == 404


def test_only_admins_change_the_library(client, keys, task_folders, upload):
    root, _ = task_folders
    response = client.post("/v1/library/folders", json={"path": str(root)}, headers=keys.alice)
    assert response.status_code == 403 and response.json()["error"] == "admin_required"
    task = upload(keys.alice, "mine").json()
    assert client.put(f"/v1/library/{task['id']}", headers=keys.alice).status_code == 403
    assert client.put(f"/v1/library/{task['id']}", headers=keys.bob).status_code == 404
    promoted = client.put(f"/v1/library/{task['id']}", headers=keys.admin)
    assert promoted.status_code == 200 and promoted.json()["is_library"] is True


def test_folders_outside_the_library_roots_are_refused(client, keys, task_folders, settings):
    _, broken = task_folders
    for path in (str(broken.parent), str(settings.tasks_root / ".." / "broken_root"), "/etc"):
        response = client.post("/v1/library/folders", json={"path": path}, headers=keys.admin)
        assert response.status_code == 403, path
        assert response.json()["error"] == "folder_not_allowed"


def test_invalid_folder_is_rejected_whole(client, keys, task_folders, settings, table_counts):
    _, broken = task_folders
    settings.library_roots = [broken.parent]
    response = client.post("/v1/library/folders", json={"path": str(broken)}, headers=keys.admin)
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["file"] == "broken/train.jsonl" and problem["row"] == 1
    assert table_counts()["tasks"] == 0


def test_library_names_are_unique(client, keys, upload):
    first = upload(keys.alice, "same").json()
    second = upload(keys.bob, "same").json()
    assert client.put(f"/v1/library/{first['id']}", headers=keys.admin).status_code == 200
    response = client.put(f"/v1/library/{second['id']}", headers=keys.admin)
    assert response.status_code == 409 and response.json()["error"] == "library_name_taken"


def test_serve_registers_the_tasks_root_as_the_library(client, keys, task_folders, settings):
    from service.library.service import register_root

    root, _ = task_folders
    (root / "not_a_task").mkdir()
    bad = root / "bad"
    bad.mkdir()
    (bad / "task.json").write_text('{"name": "bad", "type": "poetry"}')
    context = client.app.state.context
    assert register_root(context, "admin") == 2  # alpha and beta; the broken folder is skipped
    assert register_root(context, "admin") == 0  # already registered
    listed = client.get("/v1/library", headers=keys.alice).json()
    assert sorted(t["name"] for t in listed["items"]) == ["alpha", "beta"]


def test_an_admins_own_task_and_a_library_task_share_a_name(
    client, keys, task_folders, upload, wait_job
):
    root, _ = task_folders
    mine = upload(keys.admin, "alpha")  # before the library has an alpha
    assert mine.status_code == 201, mine.text
    registered = client.post("/v1/library/folders", json={"path": str(root)}, headers=keys.admin)
    assert registered.status_code == 201, registered.text  # the library's alpha is not dropped
    assert [t["name"] for t in registered.json()] == ["alpha", "beta"]
    again = upload(keys.admin, "beta")  # after: a task of their own may share a library name
    assert again.status_code == 201, again.text
    twice = upload(keys.admin, "beta")
    assert twice.status_code == 409 and "beta" in twice.json()["message"]
    library = client.get("/v1/library", headers=keys.admin).json()
    assert sorted(t["name"] for t in library["items"]) == ["alpha", "beta"]
    # Taking an uploaded library task out would give its owner two tasks of one name: refused
    promoted = upload(keys.bob, "gamma").json()
    assert client.put(f"/v1/library/{promoted['id']}", headers=keys.admin).status_code == 200
    assert upload(keys.bob, "gamma").status_code == 201
    refused = client.delete(f"/v1/library/{promoted['id']}", headers=keys.admin)
    assert refused.status_code == 409 and "rename or delete" in refused.json()["message"]


def test_library_tasks_with_shipped_embeddings_are_embedded_first(
    client, keys, task_folders, settings, tmp_path
):
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "0123.json").write_text('{"task": "beta", "method": "semb"}')
    settings.embedding_seed_paths = [seed]
    root, _ = task_folders
    registered = client.post("/v1/library/folders", json={"path": str(root)}, headers=keys.admin)
    jobs = {
        t["name"]: client.get(f"/v1/jobs/{t['embedding']['job_id']}", headers=keys.admin).json()
        for t in registered.json()
    }
    assert jobs["beta"]["priority"] == -10 and jobs["alpha"]["priority"] == -11
