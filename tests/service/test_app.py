"""The application as a whole: health, readiness, metrics, OpenAPI, and no torch at import."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from service.app import create_app


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["database"] == "ok" and checks["index"] == "ok"
    assert checks["queue"].startswith("ok (embedded")


def test_readyz_fails_without_database_or_broker(settings):
    settings.database_url = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    settings.broker_url = "redis://127.0.0.1:1/0"
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"].startswith("failed") and checks["queue"].startswith("failed")


def test_metrics(client, keys, ready_task):
    ready_task(keys.alice, "measured")
    client.get("/v1/me", headers=keys.alice)
    assert client.get("/metrics").status_code == 401  # an admin key by default
    assert client.get("/metrics", headers=keys.alice).status_code == 403
    text = client.get("/metrics", headers=keys.admin).text
    assert (
        'taskrec_http_request_duration_seconds_count{method="GET",route="/v1/me",status="200"}'
        in text
    )
    assert 'taskrec_jobs{kind="embed",state="succeeded"} 1.0' in text
    assert 'taskrec_queue_depth{queue="embed"} 0.0' in text
    assert 'taskrec_job_duration_seconds_count{kind="embed"} 1.0' in text
    assert "taskrec_library_tasks 0.0" in text


def test_openapi_documents_errors(client):
    spec = client.get("/openapi.json").json()
    create = spec["paths"]["/v1/tasks"]["post"]
    assert {"201", "401", "409", "413", "415", "422"} <= set(create["responses"])
    assert set(create["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    recommend = spec["paths"]["/v1/tasks/{task_id}/recommendations"]["get"]
    assert {"200", "401", "404", "409"} <= set(recommend["responses"])
    assert "ErrorBody" in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                assert "401" in operation["responses"], path


def test_no_torch_at_import():
    modules = "service.app, service.cli, service.jobs.celery_app, service.jobs.runner"
    code = (
        f"import sys, {modules}\n"
        "from service.app import create_app\n"
        "create_app()\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
        "assert 'workers.research.evaluate' not in sys.modules  # the API serves, never evaluates\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("settings_overrides", [{"metrics_access": "open"}])
def test_metrics_can_be_open(client):
    assert client.get("/metrics").status_code == 200


def test_every_answer_carries_a_request_id(client, keys):
    mine = client.get("/v1/me", headers=keys.alice | {"X-Request-ID": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42"
    fresh = client.get("/v1/me", headers=keys.alice).headers["x-request-id"]
    assert len(fresh) == 16 and fresh != "trace-42"


def test_log_lines_carry_time_and_request_id_as_text_or_json(capsys):
    import json
    import logging

    from service.logs import configure_logging, request_id

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("info", "json")
        token = request_id.set("r-1")
        logging.getLogger("taskrec.test").info("hello %s", "there")
        logging.getLogger("alembic.runtime.migration").info("noise")  # quieted
        request_id.reset(token)
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [(x["logger"], x["request_id"], x["message"]) for x in lines] == [
            ("taskrec.test", "r-1", "hello there")
        ]
        assert lines[0]["time"][:4].isdigit()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_the_api_docs_need_nothing_from_outside(client):
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert urls and all(not u.startswith(("http://", "https://", "//")) for u in urls), urls
        for url in urls:
            if url.startswith("/"):
                assert client.get(url).status_code == 200, url
