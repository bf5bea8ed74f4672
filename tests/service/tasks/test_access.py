"""One owner cannot read, list, recommend from, transfer with or delete another's task: 404."""

from __future__ import annotations


def test_other_owners_task_is_invisible(client, keys, ready_task):
    task = ready_task(keys.alice, "private", offset=3)
    task_id, job_id = task["id"], task["embedding"]["job_id"]
    for path in (
        f"/v1/tasks/{task_id}",
        f"/v1/tasks/{task_id}/embeddings",
        f"/v1/tasks/{task_id}/recommendations",
        f"/v1/jobs/{job_id}",
    ):
        response = client.get(path, headers=keys.bob)
        assert response.status_code == 404, path
        assert client.get(path, headers=keys.alice).status_code in (200, 409), path
    assert client.get("/v1/tasks", headers=keys.bob).json()["total"] == 0
    assert client.get("/v1/jobs", headers=keys.bob).json()["total"] == 0
    assert client.delete(f"/v1/tasks/{task_id}", headers=keys.bob).status_code == 404
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=keys.bob).status_code == 404
    assert (
        client.post(f"/v1/tasks/{task_id}/embeddings", json={}, headers=keys.bob).status_code == 404
    )
    transfer = {"target_task_id": task_id, "sources": "auto"}
    assert client.post("/v1/transfers", json=transfer, headers=keys.bob).status_code == 404
    mine = ready_task(keys.bob, "mine", offset=3)
    as_source = {"target_task_id": mine["id"], "sources": [task_id]}
    assert client.post("/v1/transfers", json=as_source, headers=keys.bob).status_code == 404
    assert client.get(f"/v1/tasks/{task_id}", headers=keys.alice).status_code == 200


def test_library_tasks_are_shared_but_read_only(client, keys, ready_task):
    task = ready_task(keys.admin, "shared", offset=4)
    assert client.put(f"/v1/library/{task['id']}", headers=keys.admin).status_code == 200
    assert client.get(f"/v1/tasks/{task['id']}", headers=keys.bob).status_code == 200
    listed = client.get("/v1/tasks", headers=keys.bob).json()
    assert [t["name"] for t in listed["items"]] == ["shared"]
    response = client.delete(f"/v1/tasks/{task['id']}", headers=keys.bob)
    assert response.status_code == 403
    assert response.json()["error"] == "library_task_read_only"
    assert client.delete(f"/v1/library/{task['id']}", headers=keys.bob).status_code == 403
    assert client.put(f"/v1/library/{task['id']}", headers=keys.bob).status_code == 403
