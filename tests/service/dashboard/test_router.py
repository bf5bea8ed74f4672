"""The dashboard through the app: sign-in and sessions, access rules shared with the API,
CSRF, throttled logins, errors as pages, the live jobs stream."""

from __future__ import annotations

import json
import re
import time

import pytest

from service.dashboard.session import COOKIE


def _login_form(client) -> str:
    return re.search(r'name="token" value="([^"]+)"', client.get("/dashboard/login").text)[1]


def test_pages_ask_to_sign_in_first(client):
    response = client.get("/dashboard/jobs?page=2", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=/dashboard/jobs%3Fpage%3D2"


def test_sign_in_sets_a_strict_http_only_cookie_without_the_key(client, keys):
    token = _login_form(client)
    data = {"key": keys.secrets["alice"], "token": token, "next": "/dashboard/map"}
    response = client.post("/dashboard/login", data=data, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/map"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
    assert "Path=/dashboard" in cookie
    assert keys.secrets["alice"] not in cookie and keys.secrets["alice"][4:20] not in cookie
    assert "alice" in client.get("/dashboard/tasks").text


def test_sign_in_never_redirects_off_the_dashboard(client, keys):
    data = {"key": keys.secrets["alice"], "token": _login_form(client), "next": "//evil.test/x"}
    response = client.post("/dashboard/login", data=data, follow_redirects=False)
    assert response.headers["location"] == "/dashboard/tasks"


def test_a_wrong_key_is_a_page_and_failures_are_throttled(client, settings):
    for _ in range(settings.dashboard_login_attempts):
        data = {"key": "trk_wrong", "token": _login_form(client)}
        response = client.post("/dashboard/login", data=data)
        assert response.status_code == 401
        assert "unknown API key" in response.text and "Traceback" not in response.text
    response = client.post("/dashboard/login", data={"key": "trk_wrong", "token": "x"})
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert "too many failed sign-ins" in response.text


def test_a_forged_or_stale_login_form_is_refused(client, keys):
    client.get("/dashboard/login")
    data = {"key": keys.secrets["alice"], "token": "not-the-form-token"}
    assert client.post("/dashboard/login", data=data).status_code == 403


def test_revoking_the_key_ends_its_sessions(client, keys, login):
    login(keys.secrets["alice"])
    assert client.get("/dashboard/tasks").status_code == 200
    prefix = keys.secrets["alice"][:12]
    assert client.delete(f"/v1/keys/{prefix}", headers=keys.admin).status_code == 200
    response = client.get("/dashboard/tasks", follow_redirects=False)
    assert response.status_code == 303 and "/dashboard/login" in response.headers["location"]


def test_a_tampered_cookie_is_no_session(client, keys, login):
    login(keys.secrets["alice"])
    value = client.cookies.get(COOKIE)
    client.cookies.clear()
    client.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/dashboard/tasks", follow_redirects=False).status_code == 303


def test_another_owners_task_is_a_404_page_and_the_api_stays_json(client, keys, login, upload):
    bobs = upload(keys.bob, "bobs").json()["id"]
    login(keys.secrets["alice"])
    page = client.get(f"/dashboard/tasks/{bobs}")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert f"no task {bobs}" in page.text
    assert client.get("/dashboard/no/such/page").status_code == 404
    api = client.get(f"/v1/tasks/{bobs}", headers=keys.alice)
    assert api.status_code == 404 and api.json()["error"] == "task_not_found"


def test_admins_see_the_library_page_owners_do_not(client, keys, login):
    login(keys.secrets["alice"])
    assert client.get("/dashboard/library").status_code == 403
    client.cookies.clear()
    login(keys.secrets["root"])
    page = client.get("/dashboard/library")
    assert page.status_code == 200 and "Donor records" in page.text


def test_posts_need_the_sessions_csrf_token(client, keys, login):
    csrf = login(keys.secrets["alice"])
    assert client.post("/dashboard/logout", data={"csrf": "nope"}).status_code == 403
    files = {"train": ("t.jsonl", b"{}\n", "application/jsonl")}
    refused = client.post("/dashboard/submit?csrf=nope", data={"name": "x"}, files=files)
    assert refused.status_code == 403
    response = client.post("/dashboard/logout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/dashboard/tasks", follow_redirects=False).status_code == 303


def test_submit_shows_problems_row_by_row_and_keeps_nothing(
    client, keys, login, table_counts, stored_files, to_jsonl
):
    csrf = login(keys.secrets["alice"])
    before = table_counts()
    rows = [
        {"id": "1", "text": "fine", "label": "yes"},
        {"id": "2", "text": "ok", "label": "maybe"},
    ]
    data = {"name": "toy", "type": "classification", "labels": "no,yes", "metric": "accuracy"}
    files = {"train": ("rows.jsonl", to_jsonl(rows), "application/jsonl")}
    response = client.post(f"/dashboard/submit?csrf={csrf}", data=data, files=files)
    assert response.status_code == 422
    problem = re.search(r"<td>rows.jsonl</td><td class=\"num\">2</td><td>label</td>", response.text)
    assert problem, response.text
    assert 'value="toy"' in response.text  # the fields are kept for the next try, files not
    assert table_counts() == before and stored_files() == []


def test_submit_creates_the_task_and_opens_it(client, keys, login, make_rows, to_jsonl):
    csrf = login(keys.secrets["alice"])
    data = {"name": "toy", "type": "classification", "labels": "neg,pos"}
    files = {"train": ("rows.jsonl", to_jsonl(make_rows(24)), "application/jsonl")}
    response = client.post(
        f"/dashboard/submit?csrf={csrf}", data=data, files=files, follow_redirects=False
    )
    assert response.status_code == 303
    task_id = int(response.headers["location"].rsplit("/", 1)[1])
    assert client.get(f"/v1/tasks/{task_id}", headers=keys.alice).json()["name"] == "toy"


def test_task_page_shows_statistics_and_recommendations(client, keys, login, ready_task, make_rows):
    ready_task(keys.admin, "lib_one", offset=1, validation=make_rows(6, 5))
    ready_task(keys.admin, "lib_two", offset=2, vocabulary=8, validation=make_rows(6, 6))
    for name in ("lib_one", "lib_two"):
        task = next(
            t
            for t in client.get("/v1/tasks", headers=keys.admin).json()["items"]
            if t["name"] == name
        )
        client.put(f"/v1/library/{task['id']}", headers=keys.admin)
    mine = ready_task(keys.alice, "mine", validation=make_rows(8, 3))
    _until_ranked(client, keys.alice, mine["id"], 2)  # the page shows what the API ranks
    login(keys.secrets["alice"])
    page = client.get(f"/dashboard/tasks/{mine['id']}").text
    assert "Label distribution" in page and "words per row" in page
    assert page.count('class="place"') == 2 and "lib_one" in page and "lib_two" in page
    assert "Start transfer" in page
    assert '<option value="adapter"' in page and '<option value="fusion"' in page
    csrf = login(keys.secrets["alice"])
    form = {"csrf": csrf, "k": "1", "seeds": "1", "strategy": "adapter"}
    started = client.post(f"/dashboard/tasks/{mine['id']}/transfer", data=form)
    assert started.status_code == 200 and "/dashboard/jobs" in str(started.url)
    [run] = client.get("/v1/transfers", headers=keys.alice).json()["items"]
    assert run["strategy"] == "adapter" and run["auto"] is True
    client.post(f"/v1/jobs/{run['job_id']}/cancel", headers=keys.alice)
    assert ">adapter</span>" in client.get("/dashboard/transfers").text
    refused = client.post(f"/dashboard/tasks/{mine['id']}/transfer", data={**form, "strategy": "x"})
    assert refused.status_code == 422


def _until_ranked(client, headers, task_id: int, count: int, timeout: float = 30.0) -> None:
    """Wait until the API ranks ``count`` library tasks for ``task_id`` (promotions reach the
    index on their own time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(f"/v1/tasks/{task_id}/recommendations", headers=headers)
        if answer.status_code == 200 and len(answer.json()["ranking"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} never had {count} library tasks ranked")


def test_jobs_stream_pushes_rows_on_the_cookie_and_ends_on_revocation(client, keys, login, upload):
    login(keys.secrets["alice"])
    job_id = upload(keys.alice, "toy").json()["embedding"]["job_id"]
    events = []
    with client.stream("GET", "/dashboard/jobs/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line.split(":", 1)[1]))
                if len(events) == 1:
                    client.delete(f"/v1/keys/{keys.secrets['alice'][:12]}", headers=keys.admin)
    assert f'id="job-{job_id}"' in events[0]["html"]


def test_map_and_neighbours(client, keys, login, ready_task):
    ids = []
    for i in range(3):
        task = ready_task(keys.admin, f"lib_{i}", offset=i, vocabulary=6 + i)
        client.put(f"/v1/library/{task['id']}", headers=keys.admin)
        ids.append(task["id"])
    mine = ready_task(keys.alice, "mine")
    login(keys.secrets["alice"])
    page = client.get("/dashboard/map?method=textemb")
    assert page.status_code == 200 and "3 library tasks embedded by textemb" in page.text
    found = client.get(f"/dashboard/map/neighbours?method=taskemb&task_id={mine['id']}").json()
    assert {n["id"] for n in found["neighbours"]} == set(ids)
    assert client.get("/dashboard/map?method=bogus").status_code == 422


def test_plotly_comes_from_the_installed_package(client):
    response = client.get("/dashboard/assets/plotly.min.js")
    assert response.status_code == 200 and len(response.content) > 1_000_000
    assert response.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("settings_overrides", [{"env": "production"}])
def test_without_a_secret_production_keeps_the_dashboard_off(client, settings_overrides):
    page = client.get("/dashboard/login")
    assert page.status_code == 503 and "TASKREC_DASHBOARD_SECRET" in page.text
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"embedded_workers": 0}])
def test_jobs_page_shows_queue_places_and_cancels(client, keys, login, upload):
    """Nothing runs (no worker): both jobs wait, the second behind the first."""
    first = upload(keys.alice, "one").json()["embedding"]["job_id"]
    upload(keys.alice, "two")
    csrf = login(keys.secrets["alice"])
    page = client.get("/dashboard/jobs").text
    assert "#2 in queue" in page and "Cancel" in page
    response = client.post(
        f"/dashboard/jobs/{first}/cancel", data={"csrf": csrf}, follow_redirects=False
    )
    assert response.status_code == 303
    assert client.get(f"/v1/jobs/{first}", headers=keys.alice).json()["state"] == "cancelled"
    assert "#1 in queue" in client.get("/dashboard/jobs").text
    again = client.post(f"/dashboard/jobs/{first}/cancel", data={"csrf": csrf})
    assert again.status_code == 409 and "already cancelled" in again.text


def test_user_text_is_escaped_on_pages(client, keys, login, upload):
    rows = [{"id": str(i), "text": "fine", "label": ["<b>no</b>", "yes"][i % 2]} for i in range(8)]
    task = upload(keys.alice, "markup", rows=rows, labels="<b>no</b>,yes")
    assert task.status_code == 201, task.text
    login(keys.secrets["alice"])
    page = client.get(f"/dashboard/tasks/{task.json()['id']}").text
    assert "<b>no</b>" not in page and "&lt;b&gt;no&lt;/b&gt;" in page


def test_the_transfers_view_pages_its_runs(
    client, keys, login, upload, make_rows, session_factory, monkeypatch
):
    from service.dashboard import views
    from service.models import Owner, Task
    from service.transfers.schemas import TransferSettings
    from service.transfers.service import create_run

    ids = []
    for name in ("src", "goal"):
        response = upload(keys.alice, name, validation=make_rows(6, 3))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    with session_factory() as session:
        source, target = session.get(Task, ids[0]), session.get(Task, ids[1])
        owner = session.get(Owner, target.owner_id)
        for _ in range(2):
            create_run(session, owner, target, [source], TransferSettings())
        session.commit()
    monkeypatch.setattr(views, "TRANSFERS_PAGE_SIZE", 1)
    login(keys.secrets["alice"])
    first = client.get("/dashboard/transfers")
    assert first.status_code == 200 and "page 1 of 2 (2)" in first.text
    second = client.get("/dashboard/transfers?page=2")
    assert "page 2 of 2 (2)" in second.text and "goal" in second.text


def test_the_library_page_counts_donor_records_per_protocol(
    client, keys, login, settings, named_library
):
    # The default sets' protocol ranks by default; a calibration of another protocol shows
    # beside it, so an admin sees both counts.
    model = settings.default_transfer_model

    def post(name: str, sources: tuple[str, ...], protocol: dict) -> None:
        rows = [f"{s},{t},0,{50 + i},50,{i},accuracy" for t in ("rte", "mrpc")
                for i, s in enumerate(sources) if s != t]  # fmt: skip
        files = {"file": ("m.csv", "source,target,seed,score,baseline,gain,metric\n"
                          + "\n".join(rows) + "\n", "text/csv")}  # fmt: skip
        fields = {"name": name, "transfer_model": model, "protocol": json.dumps(protocol)}
        made = client.post("/v1/evidence", data=fields, files=files, headers=keys.admin)
        assert made.status_code == 201, made.text

    post("small", ("mnli", "snli"), {"source_n": 1000})
    post("big", ("mnli", "snli", "qnli", "rte", "mrpc"), {"source_n": 10000})
    login(keys.secrets["root"])
    page = client.get("/dashboard/library").text
    assert "2 of 5 library tasks have been measured as a source" in page  # the default: small
    assert "<td>small</td><td>2 of 5</td>" in page and "<td>big</td><td>5 of 5</td>" in page
    assert page.index("<td>small</td>") < page.index("<td>big</td>")  # the defaults first
