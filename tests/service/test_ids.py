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
