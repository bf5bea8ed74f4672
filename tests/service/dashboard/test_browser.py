"""The dashboard in a real browser: Debian's chromium driven by Playwright against a real
``taskrec serve`` with a seeded library (embedded tasks, an evidence set, a finished transfer, a
saved evaluation). Any request to an address other than this machine's loopback fails the test.

Screenshots of every page land in ``tests/artifacts/dashboard/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

CHROMIUM = Path(os.environ.get("TASKREC_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"
REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-c", "from service.cli import app; app()"]
ADMIN_KEY = "trk_dashboard-browser-test-admin-key-0123456789"
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no chromium at {CHROMIUM}"),
    pytest.mark.timeout(300),
]

WORDS = [
    ["good", "great", "fine", "bad", "awful", "poor"],
    ["red", "blue", "green", "dark", "light", "pale"],
    ["run", "walk", "jump", "sit", "lie", "stand"],
    ["cat", "dog", "bird", "fish", "cow", "hen"],
]


def _rows(n: int, words: list[str], offset: int = 0) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "text": f"the thing was {words[(i + offset) % 6]} and {words[(i * 5 + offset) % 6]}",
            "label": "yes" if (i + offset) % 6 < 3 else "no",
        }
        for i in range(n)
    ]


def _write_task(folder: Path, manifest: dict, train: list[dict], validation: list[dict]) -> None:
    folder.mkdir(parents=True)
    (folder / "task.json").write_text(json.dumps(manifest))
    for split, rows in (("train", train), ("validation", validation)):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _library(root: Path) -> list[str]:
    """Four classification tasks of different vocabularies and one regression task."""
    names = []
    for i, words in enumerate(WORDS):
        name = f"lib_{'abcd'[i]}"
        manifest = {
            "name": name,
            "type": "classification",
            "labels": ["no", "yes"],
            "metric": "accuracy",
        }
        _write_task(root / name, manifest, _rows(32, words, i), _rows(12, words, i + 1))
        names.append(name)
    sts = [
        {
            "id": f"s{i}",
            "text": f"a man plays {WORDS[1][i % 6]}",
            "text_pair": f"a man sings {i}",
            "label": float(i % 5),
        }
        for i in range(32)
    ]
    manifest = {"name": "lib_sts", "type": "regression", "metric": "pearson"}
    _write_task(root / "lib_sts", manifest, sts, sts[:12])
    return [*names, "lib_sts"]


def _evidence(path: Path, names: list[str]) -> None:
    """A small sweep among the classification tasks: every source on every target, 2 seeds."""
    lines = ["source,target,seed,score,baseline,gain,metric"]
    for t, target in enumerate(names):
        for s, source in enumerate(names):
            if source == target:
                continue
            for seed in (0, 1):
                gain = ((s * 7 + t * 3) % 9 - 3) * 1.5 + seed * 0.5
                lines.append(f"{source},{target},{seed},{50 + gain},50,{gain},accuracy")
    path.write_text("\n".join(lines) + "\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    admin: str
    alice: str
    bob: str
    bob_task: int
    folder: Path

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )


def _wait(what: str, check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_job(api: httpx.Client, job_id: int) -> dict:
    def done():
        job = api.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    job = _wait(f"job {job_id}", done)
    assert job["state"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_encoder_dir) -> Iterator[Server]:
    """``taskrec serve`` on a free port with the library embedded, keys for alice and bob, an
    evidence set, a finished transfer of alice's and a task of bob's."""
    folder = tmp_path_factory.mktemp("dashboard-server")
    names = _library(folder / "library")
    _evidence(folder / "sweep.csv", names[:4])
    shutil.copyfile(REPO / "results" / "ranker.json", folder / "ranker.json")  # the saved one
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKREC_")} | {
        "TASKREC_MODEL": str(tiny_encoder_dir),
        "TASKREC_TORCH_THREADS": "1",
        "TASKREC_DEVICE": "cpu",
        "TASKREC_TASKS_ROOT": str(folder / "library"),
        "TASKREC_MAX_EXAMPLES": "16",
        "TASKREC_EMBED_BATCH_SIZE": "16",
        "TASKREC_ADMIN_KEY": ADMIN_KEY,
        "TASKREC_RANKER_PATH": str(folder / "ranker.json"),
        "TASKREC_EVIDENCE_FILES": json.dumps({"tiny-sweep": str(folder / "sweep.csv")}),
        "TASKREC_JOB_POLL_INTERVAL_S": "0.05",
        "TASKREC_JOB_PROGRESS_INTERVAL_S": "0",
        "TASKREC_SSE_POLL_INTERVAL_S": "0.2",
        "TASKREC_RATE_LIMIT_PER_MINUTE": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    args = ["serve", "--port", str(port), "--data-dir", str(folder / "data"), "--library"]
    log = (folder / "serve.log").open("w")
    process = subprocess.Popen([*CLI, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        yield _seed(url, names, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _seed(url: str, names: list[str], process) -> Server:
    def healthy():
        assert process.poll() is None, "taskrec serve exited (see serve.log)"
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    _wait("the server", healthy, 60)
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)

    def library_ready():
        items = admin.get("/v1/library").json()["items"]
        return len(items) == len(names) and all(t["embedding"]["state"] == "ready" for t in items)

    _wait("the library's embeddings", library_ready)
    _wait("the shipped evidence set", lambda: admin.get("/v1/evidence").json())
    issued = {o: admin.post("/v1/keys", json={"owner": o}).json()["key"] for o in ("alice", "bob")}
    ids = {t["name"]: t["id"] for t in admin.get("/v1/library").json()["items"]}
    server = Server(url, ADMIN_KEY, issued["alice"], issued["bob"], 0, Path())
    with server.api(server.alice) as alice:
        tiny = {"epochs": 1, "batch_size": 8, "max_steps": 2}
        run = alice.post(
            "/v1/transfers",
            json={
                "target_task_id": ids["lib_a"],
                "sources": [ids["lib_b"]],
                "seeds": [0, 1],
                "train_n": 16,
                "eval_n": 8,
                "source_max_examples": 16,
                "max_length": 32,
                "source_train": tiny,
                "target_train": tiny,
            },
        )
        assert run.status_code == 202, run.text
        _wait_job(alice, run.json()["job_id"])
    with server.api(server.bob) as bob:
        rows = "".join(json.dumps(r) + "\n" for r in _rows(24, WORDS[2]))
        created = bob.post(
            "/v1/tasks",
            data={"name": "bobs_task", "type": "classification", "labels": "no,yes"},
            files={"train": ("train.jsonl", rows.encode(), "application/jsonl")},
        )
        assert created.status_code == 201, created.text
        server.bob_task = created.json()["id"]
    return server


# --- the browser -----------------------------------------------------------------------------


class Browser:
    """A chromium page that refuses (and records) any request leaving the loopback."""

    def __init__(self, pw, server: Server, width: int = 1280, height: int = 900) -> None:
        self.server = server
        self.browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        self.context = self.browser.new_context(viewport={"width": width, "height": height})
        self.outside: list[str] = []
        self.context.route("**/*", self._only_loopback)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _only_loopback(self, route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def go(self, path: str):
        return self.page.goto(self.server.url + path)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, key: str) -> None:
        self.go("/dashboard/login")
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/dashboard/tasks")

    def close(self) -> None:
        self.browser.close()
        assert not self.outside, f"requests left the machine: {self.outside}"
        assert not self.errors, f"JavaScript errors: {self.errors}"


@pytest.fixture(scope="module")
def pw():
    with playwright.sync_playwright() as started:
        yield started


def _plotted(page, selector: str = ".chart") -> None:
    """Wait until Plotly drew every chart of the page (locators, not a polled script: the
    page's Content-Security-Policy refuses evaluated strings, Playwright's polling included)."""
    charts = page.locator(selector)
    for i in range(charts.count()):
        charts.nth(i).locator(".main-svg").first.wait_for()


def test_owner_flow(pw, server, tmp_path):
    """Sign in, submit through the form (bad rows first), follow the job live, open the
    recommendations, the map, the transfers and the quality page."""
    browser = Browser(pw, server)
    page = browser.page
    try:
        browser.go("/dashboard/tasks")
        page.wait_for_url("**/dashboard/login**")
        browser.shot("login")
        page.fill("#key", "trk_not-a-key")
        page.click("button[type=submit]")
        assert "unknown API key" in page.inner_text(".alert")
        browser.login(server.alice)
        assert page.locator("table a", has_text="lib_a").count() == 1
        browser.shot("tasks")

        # A rejected upload: every problem row by row, nothing kept
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"id": "1", "text": "fine", "label": "yes"}\n{"id": "2", "text": "x"}\n')
        browser.go("/dashboard/submit")
        page.fill("#name", "mine")
        page.fill("#labels", "no,yes")
        page.set_input_files("#train", str(bad))
        page.click("form.stack button[type=submit]")
        browser.shot("submit-rejected")
        problems = page.locator("table.problems tbody tr")
        assert problems.count() >= 1
        assert "2" in problems.first.inner_text()  # the row
        browser.shot("submit-rejected")

        # The jobs page stays open while the task is submitted from another tab
        jobs = browser.context.new_page()
        jobs.goto(server.url + "/dashboard/jobs")
        jobs.locator("#live", has_text="live").wait_for()
        jobs.evaluate("window.notReloaded = true")
        good = tmp_path / "train.jsonl"
        good.write_text("".join(json.dumps(r) + "\n" for r in _rows(24, WORDS[0], 3)))
        validation = tmp_path / "validation.jsonl"
        validation.write_text("".join(json.dumps(r) + "\n" for r in _rows(8, WORDS[0], 4)))
        browser.go("/dashboard/submit")
        page.fill("#name", "mine")
        page.fill("#labels", "no,yes")
        page.fill("#metric", "accuracy")
        page.set_input_files("#train", str(good))
        page.set_input_files("#validation", str(validation))
        page.click("form.stack button[type=submit]")
        page.wait_for_url("**/dashboard/tasks/*")
        task_id = int(page.url.rsplit("/", 1)[1])
        row = jobs.locator("tr.job", has=jobs.locator(f"a[href='/dashboard/tasks/{task_id}']"))
        row.locator(".state-succeeded").wait_for(timeout=60_000)
        assert jobs.evaluate("window.notReloaded") is True  # pushed, not reloaded
        page.bring_to_front()
        page.set_viewport_size({"width": 1280, "height": 900})
        jobs.screenshot(path=str(ARTIFACTS / "jobs.png"), full_page=True)
        jobs.close()

        page.reload()
        page.locator("ol.ranking li").first.wait_for()
        _plotted(page)
        assert page.locator("ol.ranking li").count() >= 3
        assert "Evidence" in page.inner_text("#recommendations")
        page.locator("ol.ranking details").first.click()
        browser.shot("task")

        # A transfer started from the task page with a strategy of the select: the transfers
        # page names the strategy and the run's cost
        page.select_option("select[name=strategy]", "adapter")
        page.click("form[action$='/transfer'] button[type=submit]")
        page.wait_for_url("**/dashboard/jobs")
        with server.api(server.alice) as alice:
            adapter_run = _wait(
                "the adapter transfer",
                lambda: next(
                    (
                        r
                        for r in alice.get("/v1/transfers").json()["items"]
                        if r["strategy"] == "adapter" and r["state"] in ("succeeded", "failed")
                    ),
                    None,
                ),
            )
        assert adapter_run["state"] == "succeeded", adapter_run["error"]
        assert adapter_run["result"]["cost"]["seconds"] > 0

        browser.go("/dashboard/map?method=textemb")
        _plotted(page)
        assert page.locator("#map .legendtext").count() >= 2  # coloured by type
        # Click the caller's task (the last trace): its nearest library tasks get linked
        x, y = page.evaluate(
            """() => { const m = document.getElementById('map'), l = m._fullLayout;
                       const t = m.data[m.data.length - 1];
                       const box = m.querySelector('.nsewdrag').getBoundingClientRect();
                       return [box.left + l.xaxis.l2p(t.x[0]), box.top + l.yaxis.l2p(t.y[0])]; }"""
        )
        page.mouse.click(x, y)
        page.locator("#neighbours li").first.wait_for()
        assert page.locator("#neighbours li").count() == 5
        browser.shot("map")

        browser.go("/dashboard/transfers")
        _plotted(page)
        assert "lib_b" in page.inner_text("main")
        assert page.locator(".chart .heatmaplayer, .chart .hm").count() >= 1
        adapter_row = page.locator("tr", has=page.locator(".badge", has_text="adapter"))
        assert adapter_row.count() == 1
        cost = adapter_row.locator("td.num").last.inner_text()
        assert re.fullmatch(r"[\d.]+ s", cost), cost
        browser.shot("transfers")

        browser.go("/dashboard/quality")
        _plotted(page)
        assert page.locator("ul.goals li").count() >= 1
        browser.shot("quality")

        response = browser.go(f"/dashboard/tasks/{server.bob_task}")  # bob's: not found
        assert response.status == 404
        assert "no task" in page.inner_text(".error-page")
        browser.shot("not-found")

        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        browser.go(f"/dashboard/tasks/{task_id}")
        _plotted(page)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        browser.shot("task-phone")
    finally:
        browser.close()


def test_admin_pages_and_offline_docs(pw, server):
    """The library page for an admin; /docs renders with nothing fetched from outside."""
    browser = Browser(pw, server)
    page = browser.page
    try:
        browser.login(server.admin)
        browser.go("/dashboard/library")
        assert page.locator("table tbody tr").count() == 5
        assert "Donor records" in page.inner_text("main")
        browser.shot("library")
        browser.go("/docs")
        page.locator(".swagger-ui .information-container").wait_for()
        browser.shot("docs")
    finally:
        browser.close()
