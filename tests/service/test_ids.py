"""Ids and offsets beyond the databases' integers are 422s naming the parameter, never 500s."""

from __future__ import annotations

import pytest

HUGE = (2**31, 2**63, 10**30)
ROUTES = (
    "/v1/tasks/{n}",
    "/v1/tasks/{n}/embeddings",
    "/v1/tasks/{n}/recommendations",
    "/v1/jobs/{n}",
    "/v1/jobs/{n}/events",
    "/v1/transfers/{n}",
    "/v1/batches/{n}",
    "/v1/tasks?offset={n}",
    "/v1/jobs?offset={n}",
    "/v1/jobs?task_id={n}",
    "/v1/library?offset={n}",
    "/v1/transfers?offset={n}",
    "/v1/batches?offset={n}",
    "/v1/evidence/x?offset={n}",
)


@pytest.mark.parametrize("number", HUGE)
def test_huge_ids_and_offsets_are_422(client, keys, number):
    for route in ROUTES:
        response = client.get(route.format(n=number), headers=keys.alice)
        assert response.status_code == 422, (route, response.status_code, response.text)
        body = response.json()
        assert body["error"] == "invalid_request" and body["problems"], route


def test_the_largest_id_is_a_plain_404(client, keys):
    response = client.get(f"/v1/tasks/{2**31 - 1}", headers=keys.alice)
    assert response.status_code == 404 and response.json()["error"] == "task_not_found"
    assert client.delete(f"/v1/library/{2**40}", headers=keys.admin).status_code == 422


def test_deeply_nested_json_is_a_4xx(client, keys, upload):
    deep = b"[" * 100_000 + b"]" * 100_000
    for route in ("/v1/transfers", "/v1/batches", "/v1/tasks"):
        response = client.post(
            route, content=deep, headers=keys.alice | {"content-type": "application/json"}
        )
        assert response.status_code in (400, 422), (route, response.text)  # never a 500
        assert response.json()["error"] in ("bad_request", "invalid_request", "task_invalid")
    rows = deep.decode()
    files = {"train": ("train.jsonl", rows.encode() + b"\n", "application/jsonl")}
    data = {"name": "deep", "type": "classification", "labels": "a,b", "metric": "accuracy"}
    response = client.post("/v1/tasks", data=data, files=files, headers=keys.alice)
    assert response.status_code == 422
    assert response.json()["problems"][0]["row"] == 1
    assert "nested too deeply" in response.json()["problems"][0]["message"]
    assert client.get("/healthz").status_code == 200  # and the next request is served


def test_unknown_routes_and_methods_have_the_error_shape(client, keys):
    missing = client.get("/v1/nothing-here", headers=keys.alice)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.put("/v1/jobs", headers=keys.alice)
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]


def test_only_allowed_encoders_are_loaded(client, keys, upload, settings, tmp_path):
    task = upload(keys.alice, "mine").json()
    for path in ("/etc", str(tmp_path / "nowhere"), "some-org/some-model"):
        asked = client.post(
            f"/v1/tasks/{task['id']}/embeddings", json={"model": path}, headers=keys.alice
        )
        assert asked.status_code == 422, asked.text
        body = asked.json()
        assert body["error"] == "encoder_not_allowed" and body["problems"][0]["field"] == "model"
        # the same answer for a folder that exists and one that does not: nothing to probe
        assert "is not allowed on this server" in body["message"]
        transfer = {"target_task_id": task["id"], "sources": [task["id"]], "model": path}
        refused = client.post("/v1/transfers", json=transfer, headers=keys.alice)
        assert refused.status_code == 422 and refused.json()["error"] == "encoder_not_allowed"
    own = client.post(
        f"/v1/tasks/{task['id']}/embeddings", json={"model": settings.model}, headers=keys.alice
    )
    assert own.status_code == 202, own.text


@pytest.mark.parametrize("settings_overrides", [{"max_text_chars": 1000}])
def test_a_text_past_the_field_limit_is_a_422_naming_its_row(client, keys, upload, make_rows):
    rows = make_rows(12)
    rows[4]["text"] = "long " * 1000  # 5,000 characters
    response = upload(keys.alice, "long", rows=rows)
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert (problem["row"], problem["field"]) == (5, "text")
    assert problem["message"] == "text has 5,000 characters; the limit is 1,000"
