"""Leave-one-target-out evaluation: no leak from the held-out target, and sensible outputs."""

from __future__ import annotations

import dataclasses
import json

import pytest

from workers.research.evaluate import EvalConfig, evaluate, plot, rank_held_out
from workers.selection.methods import REGISTRY
from workers.selection.rankers import LearnedRanker
from workers.selection.results import TransferRow

METHODS = ("random", "datasize", "taskemb", "textemb", "semb", "fused", "learned", "oracle")


def _poison(rows: list[TransferRow], target: str) -> list[TransferRow]:
    """The held-out target's rows with their outcomes turned upside down and blown up."""
    return [
        dataclasses.replace(
            r, score=-100 * r.score, gain=-100 * r.gain + int(r.source[1:]) * 13 % 97
        )
        if r.target == target
        else r
        for r in rows
    ]


def _rankings(evaluation, target: str) -> dict[tuple[str, str], list[str]]:
    return {(r.scope, r.method): r.ranking for r in evaluation.results if r.target == target}


def test_poisoning_the_held_out_targets_rows_leaves_its_rankings_unchanged(world) -> None:
    library, rows = world
    config = EvalConfig(methods=METHODS, scopes=("all", "within"))
    clean = evaluate(rows, library, config)
    poisoned = evaluate(_poison(rows, "t03"), library, config)

    before, after = _rankings(clean, "t03"), _rankings(poisoned, "t03")
    for (scope, method), ranking in before.items():
        if method != "oracle":  # the oracle *is* the truth: it must move
            assert after[(scope, method)] == ranking, (scope, method)
    assert after[("all", "oracle")] != before[("all", "oracle")]

    # The poison is real evidence for every *other* target: the learned ranker there sees it.
    others_before = LearnedRanker(library).fit(r for r in rows if r.target != "t05")
    others_after = LearnedRanker(library).fit(r for r in _poison(rows, "t03") if r.target != "t05")
    assert others_before.coefficients() != others_after.coefficients()


def test_rankers_refuse_evidence_that_holds_the_targets_rows(world) -> None:
    library, rows = world
    with pytest.raises(ValueError, match="leak"):
        rank_held_out("t03", ["t01", "t02"], library, rows)
    held_out = [r for r in rows if r.target != "t03"]
    rankings = rank_held_out("t03", ["t01", "t02", "t04"], library, held_out)
    assert set(rankings) == set(REGISTRY) - {"random", "oracle"}  # every ranker by default


def test_learned_ranker_beats_the_baselines_on_a_world_with_structure(world) -> None:
    library, rows = world
    summary = {
        row["method"]: row for row in evaluate(rows, library, EvalConfig(methods=METHODS)).summary()
    }
    assert summary["random"]["rho"] == pytest.approx((11 + 1) / 2)  # exact expectation, n = 11
    assert summary["oracle"]["rho"] == 1.0
    assert summary["oracle"]["regret@3"] == 0.0
    for baseline in ("random", "datasize", "taskemb", "semb"):
        assert summary["learned"]["rho"] < summary[baseline]["rho"], baseline
        assert summary["learned"]["regret@3"] <= summary[baseline]["regret@3"], baseline


def test_within_type_ranks_only_sources_of_the_targets_type(world) -> None:
    library, rows = world
    evaluation = evaluate(rows, library, EvalConfig(methods=("fused",), scopes=("within",)))
    for result in evaluation.results:
        target_type = library.specs[result.target].type
        assert {library.specs[s].type for s in result.ranking} == {target_type}
        assert result.sources == 3  # 12 tasks, 3 types: 3 others share each target's type


def test_targets_with_too_few_sources_are_skipped_with_a_reason(world) -> None:
    library, rows = world
    lonely = [r for r in rows if r.target != "t00" or r.source == "t01"]
    evaluation = evaluate(lonely, library, EvalConfig(methods=("datasize",)))
    assert evaluation.skipped == [
        {
            "target": "t00",
            "scope": "all",
            "reason": "1 measured source(s) in scope: nothing to rank",
        }
    ]


def test_unknown_tasks_are_named(world) -> None:
    library, rows = world
    stray = TransferRow("mystery", "t00", 0, 1.0, 0.0, 1.0, "accuracy")
    with pytest.raises(ValueError, match="mystery"):
        evaluate([*rows, stray], library, EvalConfig(methods=("datasize",)))


def test_outputs_table_json_and_plot(world, tmp_path) -> None:
    library, rows = world
    evaluation = evaluate(rows, library, EvalConfig(methods=METHODS, scopes=("all", "within")))
    table = evaluation.table()
    assert table.splitlines()[0].startswith("| scope | method | targets | ρ ↓ | NDCG ↑ |")
    assert len(table.splitlines()) == 2 + 2 * len(METHODS)
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert {row["method"] for row in data["summary"]} == set(METHODS)
    assert len(data["per_target"]) == 12 * 2 * len(METHODS)
    png = plot(evaluation, tmp_path / "eval.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fitting_on_another_set_scores_this_sets_targets(world) -> None:
    library, rows = world
    config = EvalConfig(methods=("learned", "datasize"))
    same = evaluate(rows, library, config, train=rows)
    assert same.summary() == evaluate(rows, library, config).summary()
    # Evidence that says the opposite of the truth on every target (another model's, say)
    reversed_rows = [dataclasses.replace(r, gain=-r.gain, score=-r.score) for r in rows]
    crossed = {
        r["method"]: r for r in evaluate(rows, library, config, train=reversed_rows).summary()
    }
    own = {r["method"]: r for r in same.summary()}
    assert crossed["learned"]["rho"] > own["learned"]["rho"]
    assert crossed["datasize"] == own["datasize"]  # learns nothing: unmoved
    # The ranked target's own rows in the training set are never read
    poisoned = evaluate(rows, library, config, train=_poison(rows, "t03"))
    assert _rankings(poisoned, "t03") == _rankings(same, "t03")


def test_the_library_pool_scores_the_measured_sources_in_the_order_the_whole_library_gets(
    world,
) -> None:
    """``pool="library"``: each method ranks every library task but the target (as the API
    does), and the measured sources are scored in that order; still no leak."""
    from workers.selection.rankers import build_ranker

    library, rows = world
    measured = {"t01", "t02", "t04", "t05", "t07"}
    few = [r for r in rows if r.source in measured]  # the rest of the library is unmeasured
    config = EvalConfig(methods=("fused", "learned", "datasize"), pool="library")
    evaluation = evaluate(few, library, config)
    for result in (r for r in evaluation.results if r.target == "t03"):
        evidence = [r for r in few if r.target != "t03"]
        pool = sorted(n for n in library.specs if n != "t03")
        ranker = build_ranker(result.method, library, evidence)
        served = [s for s in ranker.rank("t03", pool) if s in measured]
        assert result.ranking == served and result.sources == len(measured)
    poisoned = evaluate(_poison(few, "t03"), library, config)
    assert _rankings(poisoned, "t03") == _rankings(evaluation, "t03")
    # Fusing component rankings over the whole library orders the measured sources otherwise
    alone = evaluate(few, library, dataclasses.replace(config, pool="measured"))
    fused = lambda e: [r.ranking for r in e.results if r.method == "fused"]  # noqa: E731
    assert fused(alone) != fused(evaluation)
    with pytest.raises(ValueError, match="unknown pool"):
        evaluate(few, library, dataclasses.replace(config, pool="everything"))
