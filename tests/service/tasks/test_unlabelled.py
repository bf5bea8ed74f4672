"""A task whose rows carry no label: accepted, its TaskEmb labelled by the head of the nearest
library task of its label space (or, with none, ranked by its text alone, saying why), and never
trained on."""

from __future__ import annotations


def _unlabelled(rows):
    return [{k: v for k, v in row.items() if k != "label"} for row in rows]


def test_an_unlabelled_task_gets_labels_from_the_nearest_library_task_of_its_label_space(
    client, keys, upload, wait_job, make_rows, ready_task
):
    near = ready_task(keys.admin, "near", offset=1)
    other = ready_task(keys.admin, "other", offset=5, labels="neg,pos,mixed")
    for task in (near, other):
        assert client.put(f"/v1/library/{task['id']}", headers=keys.admin).status_code == 200
    response = upload(keys.alice, "raw", rows=_unlabelled(make_rows(24)))
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["label_distribution"] == {} and task["labelled"] is False
    job = wait_job(task["embedding"]["job_id"], keys.alice)
    assert job["state"] == "succeeded", job
    assert job["result"]["label_donor"] == "near"  # "other" has another label set
    assert set(job["result"]["methods"]) == {"taskemb", "textemb", "semb"}
    url = f"/v1/tasks/{task['id']}/recommendations?method=taskemb"
    ranked = client.get(url, headers=keys.alice).json()
    assert ranked["method"] == "taskemb"
    assert {r["task"] for r in ranked["ranking"]} == {"near", "other"}
    assert "samples them from a head trained on near" in ranked["note"]
    transfer = {"target_task_id": task["id"], "sources": [near["id"]]}
    refused = client.post("/v1/transfers", json=transfer, headers=keys.alice)
    assert refused.status_code == 422 and "has no labels" in refused.json()["message"]


def test_without_a_fitting_library_task_it_is_ranked_by_its_text_and_says_why(
    client, keys, upload, wait_job, make_rows, ready_task
):
    library = ready_task(keys.admin, "lib", offset=1, labels="neg,pos,mixed")
    assert client.put(f"/v1/library/{library['id']}", headers=keys.admin).status_code == 200
    response = upload(keys.alice, "raw", rows=_unlabelled(make_rows(24)))
    task = response.json()
    job = wait_job(task["embedding"]["job_id"], keys.alice)
    assert job["state"] == "succeeded", job
    assert set(job["result"]["methods"]) == {"textemb", "semb"}
    assert "no labelled library task shares its label space" in job["result"]["taskemb_skipped"]
    ranked = client.get(f"/v1/tasks/{task['id']}/recommendations", headers=keys.alice).json()
    assert ranked["method"] == "semb" and [r["task"] for r in ranked["ranking"]] == ["lib"]
    assert (
        "raw has no labels and no labelled library task shares its label space" in (ranked["note"])
    )
    fused = client.get(f"/v1/tasks/{task['id']}/recommendations?method=fused", headers=keys.alice)
    assert fused.status_code == 200 and fused.json()["method"] == "semb"


def test_rows_with_and_without_labels_are_each_named(client, keys, upload, make_rows):
    rows = make_rows(24)
    rows[3].pop("label")
    rows[7].pop("label")
    response = upload(keys.alice, "half", rows=rows)
    assert response.status_code == 422
    assert [(p["row"], p["field"]) for p in response.json()["problems"]] == [
        (4, "label"),
        (8, "label"),
    ]
