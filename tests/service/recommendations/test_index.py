"""FAISS index store: cosine search, persistence, incremental updates, staleness, encoders apart."""

from __future__ import annotations

import numpy as np
import pytest

from service.recommendations.index import IndexDelta, IndexStore

KEY = ("enc@1", "textemb", "mean")


def _vectors(n: int, dim: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=dim).astype("float32") for _ in range(n)]


def _loader(ids, vectors, types=None, calls=None):
    def load():
        if calls is not None:
            calls.append(1)
        tasks = {i: (f"task{i}", (types or {}).get(i, "classification")) for i in ids}
        return list(ids), list(vectors), tasks, len(vectors[0]) if vectors else 8

    return load


def _cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_search_is_cosine_best_first_and_excludes_the_target(tmp_path):
    vectors = _vectors(6)
    store = IndexStore(tmp_path)
    snapshot = store.snapshot(KEY, 1, _loader(range(10, 16), vectors))
    hits = snapshot.search(vectors[0], 10, allowed=None, exclude=10)
    expected = sorted(range(1, 6), key=lambda i: -_cosine(vectors[0], vectors[i]))
    assert [i for i, _ in hits] == [10 + i for i in expected]
    assert hits[0][1] == pytest.approx(_cosine(vectors[0], vectors[expected[0]]), abs=1e-5)


def test_type_filter_through_allowed_ids(tmp_path):
    types = {1: "regression", 2: "classification", 3: "regression"}
    store = IndexStore(tmp_path)
    snapshot = store.snapshot(KEY, 1, _loader([1, 2, 3], _vectors(3), types))
    allowed = snapshot.by_type["regression"]
    hits = snapshot.search(_vectors(1, seed=9)[0], 10, allowed=allowed, exclude=3)
    assert [i for i, _ in hits] == [1]


def test_a_target_outside_the_index_changes_nothing(tmp_path):
    vectors = _vectors(6)
    snapshot = IndexStore(tmp_path).snapshot(KEY, 1, _loader(range(10, 16), vectors))
    plain = snapshot.search(vectors[0], 4, allowed=None, exclude=None, threads=1)
    assert snapshot.search(vectors[0], 4, allowed=None, exclude=99, threads=1) == plain
    assert plain[0][0] == 10  # the target itself, when it is not excluded


def test_count_per_type_leaves_out_the_target(tmp_path):
    types = {1: "regression", 2: "classification", 3: "regression"}
    snapshot = IndexStore(tmp_path).snapshot(KEY, 1, _loader([1, 2, 3], _vectors(3), types))
    assert snapshot.count() == 3 and snapshot.count(exclude=3) == 2
    assert snapshot.count("regression", exclude=3) == 1
    assert snapshot.count("regression", exclude=2) == 2  # the target is of another type
    assert snapshot.count("regression", exclude=99) == 2 and snapshot.count("poetry") == 0


def test_persisted_index_is_reused_without_the_database(tmp_path):
    calls = []
    IndexStore(tmp_path).snapshot(KEY, 4, _loader([1, 2], _vectors(2), calls=calls))
    assert calls == [1]
    again = IndexStore(tmp_path).snapshot(KEY, 4, _loader([], [], calls=calls))
    assert calls == [1] and again.size == 2  # read from disk, not rebuilt


def test_stale_or_missing_files_are_rebuilt(tmp_path):
    calls = []
    store = IndexStore(tmp_path)
    store.snapshot(KEY, 1, _loader([1], _vectors(1), calls=calls))
    rebuilt = IndexStore(tmp_path).snapshot(KEY, 2, _loader([1, 2], _vectors(2), calls=calls))
    assert calls == [1, 1] and rebuilt.size == 2 and rebuilt.version == 2
    for path in tmp_path.rglob("*.faiss"):
        path.unlink()
    fresh = IndexStore(tmp_path).snapshot(KEY, 2, _loader([5], _vectors(1), calls=calls))
    assert len(calls) == 3 and set(fresh.tasks) == {5}


def test_incremental_add_replace_and_remove(tmp_path):
    vectors = _vectors(4)
    store = IndexStore(tmp_path)
    before = store.snapshot(KEY, 1, _loader([1, 2], vectors[:2]))
    delta = IndexDelta("enc@1", 1, 2, remove={2})
    delta.add[("textemb", "mean")] = {2: vectors[2], 3: vectors[3]}
    delta.tasks = {2: ("two", "classification"), 3: ("three", "regression")}
    store.apply(delta)
    after = store.snapshot(KEY, 2, _loader([], []))  # no rebuild needed at version 2
    assert after.size == 3 and after.tasks[3] == ("three", "regression")
    np.testing.assert_allclose(after.vector(2), vectors[2] / np.linalg.norm(vectors[2]), atol=1e-6)
    assert before.size == 2  # earlier snapshots are never mutated (lock-free readers)
    store.apply(IndexDelta("enc@1", 2, 3, remove={1}))
    other_process = IndexStore(tmp_path).snapshot(KEY, 3, _loader([], []))
    assert set(other_process.tasks) == {2, 3}


def test_a_missed_change_drops_the_index(tmp_path):
    store = IndexStore(tmp_path)
    store.snapshot(KEY, 1, _loader([1], _vectors(1)))
    store.apply(IndexDelta("enc@1", 5, 6, remove={1}))  # index is at 1, delta starts at 5
    assert not list(tmp_path.rglob("*.faiss"))
    calls = []
    store.snapshot(KEY, 6, _loader([2], _vectors(1), calls=calls))
    assert calls == [1]


def test_encoders_never_share_an_index(tmp_path):
    store = IndexStore(tmp_path)
    store.snapshot(("enc@1", "textemb", "mean"), 1, _loader([1], _vectors(1, dim=8)))
    store.snapshot(("enc@2", "textemb", "mean"), 1, _loader([2], _vectors(1, dim=16)))
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and folders[0].startswith("enc_1") and folders[1].startswith("enc_2")
    store.apply(IndexDelta("enc@2", 1, 2, remove={2}))
    assert store.snapshot(("enc@1", "textemb", "mean"), 1, _loader([], [])).size == 1


def test_zero_vectors_have_cosine_zero(tmp_path):
    vectors = [np.zeros(4, "float32"), np.ones(4, "float32")]
    snapshot = IndexStore(tmp_path).snapshot(KEY, 1, _loader([1, 2], vectors))
    hits = dict(snapshot.search(np.ones(4, "float32"), 5, allowed=None, exclude=None))
    assert hits[1] == 0.0 and hits[2] == pytest.approx(1.0)


def test_every_component_has_its_own_files(tmp_path):
    store = IndexStore(tmp_path)
    for component in ("layer0.attention", "layer0.output", "cls"):
        store.snapshot(("enc@1", "taskemb", component), 1, _loader([1], _vectors(1)))
    assert len(list(tmp_path.rglob("*.faiss"))) == 3


def _clustered(n: int, dim: int = 16, clusters: int = 12, seed: int = 3) -> list[np.ndarray]:
    """Vectors around a few centres, as task embeddings of related tasks are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    rows = centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, dim))
    return list(rows.astype("float32"))


def _exact_top(vectors, query, k, ids) -> list[int]:
    scores = [_cosine(query, v) for v in vectors]
    return [ids[i] for i in np.argsort(scores)[::-1][:k]]


def test_a_large_library_is_searched_through_an_inverted_file(tmp_path):
    vectors, ids = _clustered(600), list(range(1, 601))
    store = IndexStore(tmp_path, exact_max=100, nprobe=8)
    snapshot = store.snapshot(KEY, 1, _loader(ids, vectors))
    assert not snapshot.exact and snapshot.index.nlist == 24  # √600 lists
    queries = _clustered(20, seed=11)
    recall = np.mean(
        [
            len(
                {i for i, _ in snapshot.search(q, 10, allowed=None, exclude=None)}
                & set(_exact_top(vectors, q, 10, ids))
            )
            / 10
            for q in queries
        ]
    )
    assert recall >= 0.9
    hits = snapshot.search(queries[0], 5, allowed=None, exclude=None)
    assert hits[0][1] == pytest.approx(_cosine(queries[0], vectors[hits[0][0] - 1]), abs=1e-5)
    reread = IndexStore(tmp_path, exact_max=100, nprobe=8).snapshot(KEY, 1, _loader([], []))
    assert not reread.exact and reread.size == 600  # persisted as it was built


def test_inverted_file_filters_updates_and_reconstructs(tmp_path):
    vectors, ids = _clustered(300), list(range(1, 301))
    types = {i: "regression" if i % 10 == 0 else "classification" for i in ids}
    store = IndexStore(tmp_path, exact_max=100, nprobe=2)
    snapshot = store.snapshot(KEY, 1, _loader(ids, vectors, types))
    allowed = snapshot.by_type["regression"]  # 30 of 300: the search visits more lists
    hits = snapshot.search(vectors[9], 30, allowed=allowed, exclude=10)
    assert {i for i, _ in hits} == set(allowed) - {10}
    delta = IndexDelta("enc@1", 1, 2, remove={1, 2})
    delta.add[("textemb", "mean")] = {301: vectors[0]}
    delta.tasks = {301: ("again", "classification")}
    store.apply(delta)
    after = store.snapshot(KEY, 2, _loader([], []))
    assert not after.exact and after.size == 299 and 1 not in after.tasks
    np.testing.assert_allclose(
        after.vector(301), vectors[0] / np.linalg.norm(vectors[0]), atol=1e-6
    )


def test_crossing_the_exact_limit_rebuilds_from_the_database(tmp_path):
    vectors = _clustered(12)
    store = IndexStore(tmp_path, exact_max=10)
    assert store.snapshot(KEY, 1, _loader(range(1, 11), vectors[:10])).exact
    delta = IndexDelta("enc@1", 1, 2)
    delta.add[("textemb", "mean")] = {11: vectors[10], 12: vectors[11]}
    delta.tasks = {11: ("a", "classification"), 12: ("b", "classification")}
    store.apply(delta)
    calls = []
    grown = store.snapshot(KEY, 2, _loader(range(1, 13), vectors, calls=calls))
    assert calls == [1] and not grown.exact and grown.size == 12
