"""Recommendations through FAISS equal the engine's rank_library; the index follows the library."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from service.db import unit_of_work
from service.embeddings.repository import to_array, to_blob
from service.models import Embedding, Task


@pytest.fixture()
def library(client, keys, ready_task, wait_job):
    """Three classification tasks and one regression task, promoted into the library."""
    tasks = [
        ready_task(keys.admin, "lib_a", offset=0, vocabulary=6),
        ready_task(keys.admin, "lib_b", offset=1, vocabulary=10),
        ready_task(keys.admin, "lib_c", offset=2, vocabulary=8),
    ]
    rows = [
        {"id": str(i), "text": f"a man plays {i % 4}", "label": float(i % 5)} for i in range(20)
    ]
    response = client.post(
        "/v1/tasks",
        json={"name": "lib_reg", "type": "regression", "metric": "pearson", "train": rows},
        headers=keys.admin,
    )
    assert response.status_code == 201, response.text
    assert wait_job(response.json()["embedding"]["job_id"], keys.admin)["state"] == "succeeded"
    tasks.append(response.json())
    for task in tasks:
        promoted = client.put(f"/v1/library/{task['id']}", headers=keys.admin)
        assert promoted.status_code == 200 and promoted.json()["is_library"]
    return {t["name"]: t["id"] for t in tasks}


def _engine_ranking(session_factory, target_id: int, method: str, sizes=None):
    """``workers.similarity.rank_library`` (``sized``: ``rank_sized`` with ``sizes``) over the
    same stored vectors (library in id order)."""
    from workers.embeddings import TaskEmbedding
    from workers.encoder import EncoderRef
    from workers.selection.rankers import rank_sized
    from workers.similarity import rank_library

    with unit_of_work(session_factory) as session:
        rows = session.execute(
            select(Embedding, Task.name, Task.is_library)
            .join(Task, Task.id == Embedding.task_id)
            .order_by(Embedding.id)
        ).all()
    embeddings: dict[str, dict[str, TaskEmbedding]] = {}
    target_name, library = None, {}
    for row, name, is_library in rows:
        method_map = embeddings.setdefault(name, {})
        if row.method not in method_map:
            ref = EncoderRef(row.encoder_name, row.model_revision, "")
            method_map[row.method] = TaskEmbedding(name, row.method, ref, {}, row.num_examples, {})
        method_map[row.method].components[row.component] = to_array(row.vector)
        if row.task_id == target_id:
            target_name = name
        elif is_library:
            library[name] = method_map
    if method == "sized":
        return rank_sized(embeddings[target_name], library, sizes)
    return rank_library(embeddings[target_name], library, method)


@pytest.mark.parametrize("method", ["fused", "taskemb", "textemb", "semb"])
def test_ranking_equals_the_engines(client, keys, synthetic, session_factory, method):
    target = synthetic["target"]
    response = client.get(
        f"/v1/tasks/{target}/recommendations?k=12&method={method}", headers=keys.alice
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["library"] == {"total": 12, "ready": 12, "complete": True} and body["note"] is None
    expected = _engine_ranking(session_factory, target, method)
    assert [r["task"] for r in body["ranking"]] == [r.task for r in expected]
    for got, want in zip(body["ranking"], expected, strict=True):
        assert got["score"] == pytest.approx(want.score)
        assert got["task_id"] == synthetic[want.task]
        assert got["components"].keys() == want.components.keys()
        for name, value in want.components.items():
            assert got["components"][name] == pytest.approx(value, abs=1e-5)


def test_sized_ranks_by_the_engines_rule_with_each_sources_rows(
    client, keys, synthetic, session_factory
):
    """``sized``: the fused ranking and the largest-first one, fused (RRF), as the engine
    ranks; each source shows its training rows."""
    names = [n for n in synthetic if n != "target"]
    sizes = {name: 100 * ((i * 5) % 12 + 1) for i, name in enumerate(names)}
    with unit_of_work(session_factory) as session:
        for name, rows in sizes.items():
            session.get(Task, synthetic[name]).counts = {"train": rows}
    target = synthetic["target"]
    url = f"/v1/tasks/{target}/recommendations?k=12&method="
    body = client.get(url + "sized", headers=keys.alice).json()
    fused = client.get(url + "fused", headers=keys.alice).json()
    expected = _engine_ranking(session_factory, target, "sized", sizes)
    assert body["method"] == "sized"
    assert [r["task"] for r in body["ranking"]] == [r.task for r in expected]
    assert [r["task"] for r in body["ranking"]] != [r["task"] for r in fused["ranking"]]
    for got, want in zip(body["ranking"], expected, strict=True):
        assert got["score"] == pytest.approx(want.score)
        assert got["components"]["size.train_rows"] == sizes[got["task"]]


def test_candidate_depth_bounds_the_search(client, keys, synthetic, settings):
    settings.recommend_candidates = 3  # each component contributes only its 3 nearest
    body = client.get(
        f"/v1/tasks/{synthetic['target']}/recommendations?k=12&method=taskemb", headers=keys.alice
    ).json()
    assert 3 <= len(body["ranking"]) <= 12
    for item in body["ranking"]:  # evidence is exact even where a task missed a component's top 3
        assert set(item["components"]) == {
            "layer0.attention",
            "layer0.output",
            "layer1.attention",
            "layer1.output",
            "cls",
        }


def test_a_repeated_question_is_answered_from_the_cache(client, keys, synthetic, session_factory):
    cache = client.app.state.context.recommendations
    url = f"/v1/tasks/{synthetic['target']}/recommendations?k=5&method=taskemb"
    first = client.get(url, headers=keys.alice).json()
    misses = cache.misses
    assert client.get(url, headers=keys.alice).json() == first
    assert cache.misses == misses and cache.hits >= 1
    assert (
        client.get(url.replace("k=5", "k=4"), headers=keys.alice).json()["ranking"]
        == (first["ranking"][:4])
    )
    assert cache.misses == misses + 1  # another query is another entry
    # New vectors for the target (a recomputed embedding) are a new revision: never served stale.
    with unit_of_work(session_factory) as session:
        rows = session.scalars(
            select(Embedding).where(Embedding.task_id == synthetic["target"])
        ).all()
        columns = ("task_id", "model", "encoder_id", "encoder_name", "model_revision", "method")
        columns += ("component", "dim", "num_examples")
        fresh = [
            Embedding(
                **{c: getattr(row, c) for c in columns},
                vector=to_blob(-to_array(row.vector)),
                settings={},
            )
            for row in rows
        ]
        for row in rows:
            session.delete(row)
        session.flush()
        session.add_all(fresh)
    flipped = client.get(url, headers=keys.alice).json()
    assert [r["task"] for r in flipped["ranking"]] != [r["task"] for r in first["ranking"]]


def test_real_embeddings_rank_the_library(client, keys, library, ready_task):
    target = ready_task(keys.alice, "target", offset=5, vocabulary=6)
    body = client.get(f"/v1/tasks/{target['id']}/recommendations", headers=keys.alice).json()
    assert {r["task"] for r in body["ranking"]} == set(library)
    assert body["encoder_id"].startswith("tiny-bert")
    scores = [r["score"] for r in body["ranking"]]
    assert scores == sorted(scores, reverse=True)


def test_k_type_filter_and_default_method(client, keys, library, ready_task):
    target = ready_task(keys.alice, "target", offset=5, vocabulary=6)
    url = f"/v1/tasks/{target['id']}/recommendations"
    top2 = client.get(f"{url}?k=2", headers=keys.alice).json()
    # The default is learned (no saved evaluation); with no evidence it ranks by the
    # evidence_free_method setting's (sized), saying so
    assert top2["method"] == "sized" and len(top2["ranking"]) == 2
    assert top2["evidence"]["used"] is False
    regression = client.get(f"{url}?type=regression", headers=keys.alice).json()
    assert [r["task"] for r in regression["ranking"]] == ["lib_reg"]
    assert regression["library"]["total"] == 1
    assert client.get(f"{url}?method=nope", headers=keys.alice).status_code == 422


def test_a_library_task_is_not_its_own_neighbour(client, keys, library):
    body = client.get(f"/v1/tasks/{library['lib_a']}/recommendations?k=10", headers=keys.bob).json()
    assert "lib_a" not in [r["task"] for r in body["ranking"]]
    assert body["library"] == {"total": 3, "ready": 3, "complete": True}


def test_a_library_task_with_the_targets_own_rows_is_left_out(client, keys, library, ready_task):
    twin = ready_task(keys.alice, "my_copy_of_lib_a", offset=0, vocabulary=6)  # lib_a's rows
    body = client.get(f"/v1/tasks/{twin['id']}/recommendations?k=10", headers=keys.alice).json()
    assert "lib_a" not in {r["task"] for r in body["ranking"]}
    assert "left out lib_a" in body["note"]
    assert body["library"] == {"total": 3, "ready": 3, "complete": True}  # lib_a not counted
    other = ready_task(keys.alice, "different", offset=5, vocabulary=6)
    body = client.get(f"/v1/tasks/{other['id']}/recommendations?k=10", headers=keys.alice).json()
    assert "lib_a" in {r["task"] for r in body["ranking"]} and "left out" not in body["note"]


def test_index_follows_library_changes(client, keys, library, ready_task, settings):
    target = ready_task(keys.alice, "target", offset=5, vocabulary=6)
    url = f"/v1/tasks/{target['id']}/recommendations?k=10"

    def names():
        return {r["task"] for r in client.get(url, headers=keys.alice).json()["ranking"]}

    assert names() == set(library)
    assert list(settings.index_dir.rglob("*.faiss"))  # persisted beside the database
    assert client.delete(f"/v1/library/{library['lib_b']}", headers=keys.admin).status_code == 204
    assert names() == set(library) - {"lib_b"}
    assert client.put(f"/v1/library/{library['lib_b']}", headers=keys.admin).status_code == 200
    assert names() == set(library)
    assert client.delete(f"/v1/tasks/{library['lib_c']}", headers=keys.admin).status_code == 204
    assert names() == set(library) - {"lib_c"}
    for path in settings.index_dir.rglob("*.faiss"):  # lost files are rebuilt from the database
        path.unlink()
    client.app.state.context.indexes._snapshots.clear()
    client.app.state.context.recommendations.clear()
    assert names() == set(library) - {"lib_c"}


def test_one_shot_submit_and_recommend(client, keys, library, to_jsonl, make_rows, wait_job):
    files = {"train": ("train.jsonl", to_jsonl(make_rows(24, 5)), "application/jsonl")}
    data = {"name": "quick", "type": "classification", "labels": "neg,pos"}
    response = client.post(
        "/v1/recommendations?k=2&wait=60", data=data, files=files, headers=keys.alice
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job"]["state"] == "succeeded" and body["task"]["name"] == "quick"
    assert len(body["recommendations"]["ranking"]) == 2
    data["name"] = "later"
    response = client.post("/v1/recommendations?wait=0", data=data, files=files, headers=keys.alice)
    assert response.status_code == 202
    body = response.json()
    assert body["recommendations"] is None and body["job"]["state"] in ("queued", "running")
    assert wait_job(body["job"]["id"], keys.alice)["state"] == "succeeded"
    task_id = body["task"]["id"]
    assert client.get(f"/v1/tasks/{task_id}/recommendations", headers=keys.alice).status_code == 200


def test_best_default_method_follows_the_saved_evaluation(
    client, keys, library, ready_task, scoped_evaluation, settings
):
    target = ready_task(keys.alice, "target", offset=5, vocabulary=6)
    url = f"/v1/tasks/{target['id']}/recommendations"
    overall = client.get(url, headers=keys.alice).json()
    # learned is best, but there is no evidence yet: the best evidence-free method ranks
    assert overall["method"] == "taskemb" and overall["evaluation"]["rho"] == 6.0
    assert overall["evidence"]["used"] is False
    names = ("lib_a", "lib_b", "lib_c", "lib_reg")
    lines = ["source,target,seed,score,baseline"]
    lines += [f"{s},{t},0,{50 + i},50" for t in names[:3] for i, s in enumerate(names) if s != t]
    files = {"file": ("m.csv", "\n".join(lines).encode(), "text/csv")}
    form = {"name": "mine", "transfer_model": settings.model}  # what transfers fine-tune here
    assert client.post("/v1/evidence", data=form, files=files, headers=keys.admin).is_success
    overall = client.get(url, headers=keys.alice).json()
    assert overall["method"] == "learned" and overall["evaluation"]["rho"] == 4.0
    assert overall["evidence"]["sets"] == ["mine"]
    other = client.get(f"{url}?transfer_model=roberta-base", headers=keys.alice).json()
    # Another model without evidence: not MiniLM's pick (taskemb) nor its record, but the
    # evidence-free method that beat largest-first on both full matrices
    assert other["method"] == "sized" and other["evaluation"] == {}
    assert "beat largest-first on ρ and Regret@3 on both full transfer matrices" in other["note"]
    by_fused = client.get(f"{url}?method=fused&transfer_model=roberta-base", headers=keys.alice)
    assert by_fused.json()["evaluation"] == {}  # whatever the method
    within = client.get(f"{url}?type=classification", headers=keys.alice).json()
    assert within["method"] == "fused"  # the best within a type, by the saved evaluation
    assert within["evaluation"]["rho"] == 3.1 and within["evaluation"]["regret@3"] == 0.7
    asked = client.get(f"{url}?type=classification&method=semb", headers=keys.alice).json()
    assert asked["method"] == "semb"  # a named method always wins


def test_one_shot_waits_no_longer_than_its_request_deadline_allows(
    client, settings, keys, library, to_jsonl, make_rows
):
    from fastapi.testclient import TestClient

    from service.app import create_app

    # No worker (the library's app stops its own): the job never finishes, so only the deadline
    # can end the wait (0.5 s of it)
    client.app.state.context.dispatcher.stop()
    short = settings.model_copy(update={"request_deadline_s": 10.5, "embedded_workers": 0})
    files = {"train": ("train.jsonl", to_jsonl(make_rows(24, 7)), "application/jsonl")}
    data = {"name": "hurried", "type": "classification", "labels": "neg,pos"}
    with TestClient(create_app(short)) as client:
        started = time.monotonic()
        response = client.post(
            "/v1/recommendations?wait=300", data=data, files=files, headers=keys.alice
        )
        assert response.status_code == 202, response.text  # the job to poll, not a 503
        assert time.monotonic() - started < 8
        assert response.json()["task"]["name"] == "hurried"
