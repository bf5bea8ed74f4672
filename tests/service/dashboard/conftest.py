"""Dashboard fixtures: SQLite only (the pages read through the domain services, whose queries
the rest of the suite runs on both databases), and a browser-like client that signs in."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from service.db import make_engine, upgrade


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    template = tmp_path_factory.mktemp("dashboard-db") / "template.db"
    upgrade(f"sqlite:///{template}")
    make_engine(f"sqlite:///{template}", pooled=False).dispose()
    return template


@pytest.fixture()
def db_url(sqlite_template, tmp_path) -> str:
    path = tmp_path / "taskrec.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(r"csrf=([0-9a-f]+)", html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture()
def login(client: TestClient) -> Callable[[str], str]:
    """Sign ``client`` in with a key; returns the session's CSRF token."""

    def sign_in(key: str) -> str:
        form = client.get("/dashboard/login")
        token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)
        response = client.post(
            "/dashboard/login",
            data={"key": key, "token": token, "next": "/dashboard/tasks"},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        return csrf_of(client.get("/dashboard/tasks").text)

    return sign_in
