"""GET /v1/recommendations/methods: the methods on offer, the default, and their evaluation."""

from __future__ import annotations

from workers.data.schema import Metric, TaskSpec, TaskType
from workers.research.evaluate import EvalConfig, evaluate
from workers.selection.evidence import transfer_model_name
from workers.selection.rankers import LearnedRanker, Library
from workers.selection.results import TransferRow

URL = "/v1/recommendations/methods"


def _saved_evaluation(path) -> list[dict]:
    """A real leave-one-target-out evaluation of four methods, saved with its learned ranker."""
    names = [f"t{i}" for i in range(6)]
    spec = lambda n: TaskSpec(n, TaskType.CLASSIFICATION, Metric.ACCURACY, ("a", "b"))  # noqa: E731
    library = Library(
        specs={n: spec(n) for n in names}, sizes={n: 100 * (i + 1) for i, n in enumerate(names)}
    )
    rows = [
        TransferRow(s, t, seed, 60 + g, 60, g, "accuracy")
        for t in names
        for s in names
        if s != t
        for seed in (0, 1)
        for g in [10.0 if s == "t0" else float(int(s[1:]) - 3)]  # t0, the smallest, helps most
    ]
    config = EvalConfig(methods=("random", "datasize", "learned", "oracle"))
    summary = evaluate(rows, library, config).to_dict()["summary"]
    LearnedRanker(library, config.learned).fit(rows).save(path, evaluation=summary)
    return summary


def test_without_a_ranker_file_methods_are_listed_unmeasured(client, keys):
    body = client.get(URL, headers=keys.alice).json()
    assert body["default"] == "best" and body["best"] is None and body["evaluated_on"] is None
    assert body["best_within_type"] is None
    listed = {m["method"]: m for m in body["methods"]}
    assert {"taskemb", "textemb", "semb", "fused", "learned"} <= set(listed)
    # Nothing measured: "best" falls back to learned (which ranks as fused without evidence).
    assert listed["learned"]["default"] and all(m["evaluation"] == {} for m in listed.values())


def test_the_saved_evaluation_is_shown_per_method(client, keys, settings):
    summary = _saved_evaluation(settings.ranker_file)
    body = client.get(URL, headers=keys.alice).json()
    listed = {m["method"]: m for m in body["methods"]}
    learned = next(r for r in summary if r["method"] == "learned")
    assert listed["learned"]["evaluation"]["all"]["rho"] == learned["rho"]
    assert listed["learned"]["served"] and not listed["oracle"]["served"]
    assert listed["datasize"]["evaluation"]["all"]["targets"] == 6
    assert body["best"] == "learned"  # the only served method measured here
    assert body["evaluated_on"] == settings.ranker_file.name
    # a ranker file that names no transfer model measured the service's own
    assert body["evaluated_for"] == transfer_model_name(settings.model)
    assert listed["learned"]["reads"] == ["taskemb", "textemb", "semb"]
    assert listed["learned"]["learns"] and not listed["semb"]["learns"]


def test_methods_need_a_key(client):
    assert client.get(URL).status_code == 401


def test_best_default_is_the_best_served_method_per_scope(client, keys, scoped_evaluation):
    body = client.get(URL, headers=keys.alice).json()
    assert (body["default"], body["best"], body["best_within_type"]) == ("best", "learned", "fused")
    assert [m["method"] for m in body["methods"] if m["default"]] == ["learned"]
