"""docs/results.md: the page, its figures, and the goals it checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from workers.research.evaluate import EvalConfig, Evaluation, TargetResult, evaluate
from workers.research.report import (
    Check,
    _regret_by_reliability,
    bootstrap_interval,
    bootstrap_share_at_most,
    bootstrap_share_lower,
    check_goals,
    fresh_section,
    head_to_head,
    learned_section,
    matrix_table,
    reliable_section,
    shortfall_section,
    write_report,
)
from workers.selection.rankers import LearnedConfig, LearnedRanker
from workers.selection.results import TransferRow

METHODS = ("random", "datasize", "taskemb", "semb", "learned", "oracle")
PNG = b"\x89PNG\r\n\x1a\n"


def test_the_page_has_every_section_and_its_figures(world, tmp_path) -> None:
    library, rows = world
    evaluation = evaluate(rows, library, EvalConfig(methods=METHODS))
    page = write_report(rows, evaluation, library, tmp_path / "results.md", "taskrec evaluate x")
    text = page.read_text()
    headings = ("## The matrix", "## Goals", "## Which targets", "## Gains per", "## The tasks in")
    for heading in headings:
        assert heading in text
    assert "taskrec evaluate x" in text and evaluation.table() in text
    assert "12 targets, 12 sources" in text and "100% is measured" in text
    for figure in ("evaluation", "gains", "map"):
        assert (tmp_path / "results" / f"{figure}.png").read_bytes()[:8] == PNG
        assert f"](results/{figure}.png)" in text


def test_the_page_shows_what_the_learned_ranker_leans_on(world, tmp_path) -> None:
    library, rows = world
    evaluation = evaluate(rows, library, EvalConfig(methods=METHODS))
    ranker = LearnedRanker(library, LearnedConfig(shrinkage=3.0)).fit(rows)
    text = write_report(rows, evaluation, library, tmp_path / "r.md", "cmd", ranker=ranker)
    section = learned_section(ranker)
    assert section in text.read_text()
    assert f"Prior: **{ranker.prior}**" in section and "κ = **3**" in section
    weights = ranker.coefficients()
    assert f"| donor_percentile | {weights['donor_percentile']:+.3f} |" in section
    assert weights["donor_percentile"] > 0  # this world's gains follow each source's quality
    dropped = [name for name, weight in weights.items() if weight == 0]
    assert all(f"| {name} | 0 |" in section for name in dropped)
    features = section.split("| feature | weight |")[1].split("\n\n")[0]
    assert features.count("\n| ") == len(weights)  # a row per feature
    assert "reliability (the table above)" in section  # not repeated per target here
    unfitted = LearnedRanker(library).fit(rows[:1])
    assert "Too few measured targets" in learned_section(unfitted)


def test_goals_compare_learned_with_each_challenger(world) -> None:
    library, rows = world
    evaluation = evaluate(rows, library, EvalConfig(methods=METHODS))
    summary = {r["method"]: r for r in evaluation.summary()}
    checks = {c.goal: c for c in check_goals(evaluation)}
    assert len(checks) == 7  # 3 rivals × (ρ, Regret@3) + the Regret@3 ceiling
    rho = checks["learned beats datasize on ρ"]
    assert rho.met == (summary["learned"]["rho"] < summary["datasize"]["rho"])
    assert rho.detail.startswith(
        f"{summary['learned']['rho']:.2f} vs {summary['datasize']['rho']:.2f}; target by target"
    )
    # Target by target: counted from the per-target ranks, and every target counted once.
    mine = {r.target: r.rank for r in evaluation.results if r.method == "learned"}
    theirs = {r.target: r.rank for r in evaluation.results if r.method == "datasize"}
    better = sum(mine[t] < theirs[t] for t in mine)
    worse = sum(mine[t] > theirs[t] for t in mine)
    assert head_to_head(evaluation, "all", "datasize", "rho") == (
        better,
        len(mine) - better - worse,
        worse,
    )
    assert f"better on {better}, equal on {len(mine) - better - worse}, worse on {worse}" in (
        rho.detail
    )
    assert rho.detail.endswith("of 2,000 resamples of the targets")
    ceiling = checks["learned Regret@3 ≤ 1%"]
    assert ceiling.met == (summary["learned"]["regret@3"] <= 1.0)
    low, high = bootstrap_interval(
        [r.regret[3] for r in evaluation.results if r.method == "learned"]
    )
    assert low <= summary["learned"]["regret@3"] <= high
    assert f"90% of the means lie in {low:.2f}–{high:.2f}%" in ceiling.detail


def test_bootstrap_resamples_targets_with_their_pairs_kept_together() -> None:
    assert bootstrap_share_lower(np.array([[0.0, 1.0], [2.0, 3.0]])) == 1.0  # always lower
    assert bootstrap_share_lower(np.array([[1.0, 1.0], [2.0, 2.0]])) == 0.0  # ties are not wins
    # One target each way: lower only when the first is drawn twice, 1 in 4 resamples.
    share = bootstrap_share_lower(np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert abs(share - 0.25) < 0.04
    assert math.isnan(bootstrap_share_lower(np.empty((0, 2))))
    # Two targets, 0 and 10: the resampled mean is 0, 5 or 10 (1/4, 1/2, 1/4).
    assert bootstrap_interval([0.0, 10.0, float("nan")]) == (0.0, 10.0)
    assert bootstrap_interval([4.0] * 5) == (4.0, 4.0)
    assert abs(bootstrap_share_at_most([0.0, 10.0], 5.0) - 0.75) < 0.04  # means 0 and 5


def test_goals_met_only_on_the_mean_are_called_out(world) -> None:
    library, rows = world
    evaluation = evaluate(rows, library, EvalConfig(methods=METHODS))
    firm, shaky = Check("goal a", True, "detail a", 0.95), Check("goal b", True, "detail b", 0.6)
    text = shortfall_section([firm, shaky], evaluation, rows)
    assert "Met on the mean but not firmly" in text and "- goal b: detail b" in text
    assert "goal a" not in text
    assert "Nothing: every goal above is met" in shortfall_section([firm], evaluation, rows)


def test_without_learned_the_goals_say_so(world) -> None:
    library, rows = world
    evaluation = evaluate(rows, library, EvalConfig(methods=("random", "datasize")))
    (check,) = check_goals(evaluation)
    assert not check.met and "not among --methods" in check.detail


def test_matrix_cells_are_mean_gains_and_unmeasured_pairs_blank(world) -> None:
    _, rows = world
    kept = [r for r in rows if not (r.source == "t01" and r.target == "t00")]
    table = matrix_table(kept).splitlines()
    header, t01 = table[0].split(" | "), next(x for x in table if x.startswith("| t01 |"))
    column = header.index("t00")
    assert t01.split(" | ")[column].strip() == ""
    gains = [r.gain for r in rows if r.source == "t02" and r.target == "t00"]
    t02 = next(x for x in table if x.startswith("| t02 |")).split(" | ")
    assert t02[column].strip() == f"{sum(gains) / len(gains):+.1f}"


def test_targets_most_sources_leave_unmoved_are_named(world, tmp_path) -> None:
    library, rows = world
    flat = [
        dataclasses.replace(r, gain=0.0, score=r.baseline) if r.target == "t03" else r for r in rows
    ]
    evaluation = evaluate(flat, library, EvalConfig(methods=("random", "learned")))
    text = write_report(flat, evaluation, library, tmp_path / "r.md", "cmd").read_text()
    assert "On t03 most sources leave the target's score" in text


def test_targets_whose_sources_differ_by_noise_alone_are_named_and_set_aside(world) -> None:
    library, rows = world
    # t05 measured again: every source's seeds ±10 apart around the same mean
    flat = [
        TransferRow(r.source, "t05", r.seed, 60 + d, 60, d, "accuracy")
        for r in rows
        if r.target == "t05"
        for d in [10.0 if r.seed == 0 else -10.0]
    ]
    rows = [r for r in rows if r.target != "t05"] + flat
    evaluation = evaluate(rows, library, EvalConfig(methods=METHODS))
    section = reliable_section(evaluation, rows)

    def cells(target: str) -> list[str]:
        row = next(line for line in section.splitlines() if line.startswith(f"| {target} |"))
        return [c.strip() for c in row.strip("|").split("|")]

    assert cells("t05")[1] == "60.0" and cells("t05")[-2:] == ["10.00", "0.00"]
    assert float(cells("t00")[-1]) > 0.9
    subset = section.split("targets with reliability ≥ 0.5")[1]
    assert "t05" not in subset and "| all | learned | 11 |" in subset
    # when every target can tell its sources apart there is nothing to set aside
    assert "reliability ≥" not in reliable_section(evaluate(world[1], library), world[1])


def test_coverage_names_the_targets_measured_on_more_seeds(world, tmp_path) -> None:
    library, rows = world
    extra = [
        dataclasses.replace(r, seed=2) for r in rows if r.target in ("t03", "t07") and r.seed == 0
    ]
    rows = rows + extra
    evaluation = evaluate(rows, library, EvalConfig(methods=("random", "datasize")))
    text = write_report(rows, evaluation, library, tmp_path / "r.md", "cmd").read_text()
    others = ", ".join(f"t{i:02d}" for i in range(12) if i not in (3, 7))
    assert f"seeds 0, 1 on {others}; seeds 0, 1, 2 on t03, t07." in text
    assert "100% is measured" in text  # each target's grid spans its own seeds
    partial = [*rows, dataclasses.replace(extra[0], seed=3)]
    evaluation = evaluate(partial, library, EvalConfig(methods=("random",)))
    text = write_report(partial, evaluation, library, tmp_path / "p.md", "cmd").read_text()
    assert "100% is measured" not in text


def test_a_regret_miss_is_split_between_noisy_targets_and_the_ranker() -> None:
    def result(target: str, method: str, rank: float, regret: float) -> TargetResult:
        return TargetResult(target, "all", method, 10, rank, 0.9, {1: regret, 3: regret}, [])

    def text(c_regret: float) -> str:
        results = [
            result("a", "learned", 6, 2.0),
            result("a", "random", 5.5, 3.0),
            result("b", "learned", 1, 0.0),
            result("c", "learned", 5, c_regret),
        ]
        return _regret_by_reliability(Evaluation(EvalConfig(), results, []), ["a"])

    missed = text(6.0)
    assert "On the 1 targets whose sources differ by seed noise alone" in missed
    assert "(reliability < 0.5, the next table: a)" in missed
    assert "averages 2.00% and a random ranking's 3.00%" in missed
    assert "they add 0.67 points" in missed  # 2.0 of a mean over 3 targets
    assert "On the other 2 targets learned's Regret@3 is 3.00%, above the goal" in missed
    assert "c, whose best source learned ranked at place 5 (Regret@3 6.00%, 2.00 points" in missed
    noise_only = text(0.5)
    assert "Regret@3 is 0.25%. Meeting the goal" in noise_only
    assert "the ranker's" not in noise_only


def test_goals_within_the_targets_type_are_checked_and_their_misses_listed(world, tmp_path) -> None:
    library, rows = world
    config = EvalConfig(methods=METHODS, scopes=("all", "within"))
    evaluation = evaluate(rows, library, config)
    text = write_report(rows, evaluation, library, tmp_path / "r.md", "cmd").read_text()
    within = check_goals(evaluation, "within")
    assert len(within) == 7
    for check in within:
        assert f"{check.goal}: {check.detail}" in text.split("## What falls short")[0]
    shortfall = text.split("## What falls short")[1].split("\n## ")[0]
    missed = [c for c in within if not c.met]
    assert missed  # this world has some: its Regret@3 within type
    assert "Within the target's own type learned also misses" in shortfall
    for check in missed:
        assert f"- {check.goal}: {check.detail}" in shortfall


def test_fresh_targets_are_scored_apart(world) -> None:
    library, rows = world
    evaluation = evaluate(rows, library, EvalConfig(methods=METHODS))
    section = fresh_section(evaluation, ["t03", "t07", "never_measured"])
    assert "t03, t07 (2 targets)" in section and "never_measured" not in section
    subset = Evaluation(
        evaluation.config, [r for r in evaluation.results if r.target in ("t03", "t07")], []
    )
    assert subset.table() in section and "| all | learned | 2 |" in section
    assert "none of them (later) is measured yet" in fresh_section(evaluation, ["later"])


def test_targets_not_yet_measured_on_every_source_are_named(world, tmp_path) -> None:
    library, rows = world
    kept = [r for r in rows if not (r.target == "t00" and r.source in ("t01", "t02"))]
    evaluation = evaluate(kept, library, EvalConfig(methods=("random", "datasize")))
    text = write_report(kept, evaluation, library, tmp_path / "r.md", "cmd").read_text()
    runs, dropped = sum(r.target == "t00" for r in rows), len(rows) - len(kept)
    assert f"Not yet whole: t00 ({runs - dropped} of {runs}) runs" in text


def test_the_evidence_free_methods_that_beat_largest_first_in_every_set_are_named() -> None:
    from workers.research.report import _evidence_free_line

    def evaluation(scores: dict[str, tuple[float, float]], sources: int = 10) -> Evaluation:
        results = [
            TargetResult("t", "all", method, sources, rho, 0.9, {1: regret, 3: regret}, [])
            for method, (rho, regret) in scores.items()
        ]
        return Evaluation(EvalConfig(), results, [])

    one = evaluation({"datasize": (6.0, 4.0), "sized": (5.0, 2.0), "taskemb": (4.0, 5.0)})
    other = evaluation({"datasize": (8.0, 4.0), "sized": (7.0, 3.0), "taskemb": (5.0, 3.0)})
    methods = ["datasize", "sized", "taskemb", "learned"]
    both = _evidence_free_line({"a": one, "b": other}, methods)
    # taskemb loses on Regret@3 in set a: only sized beats datasize on both, everywhere
    assert "(sized, taskemb)" in both and "in each of a, b: **sized**." in both
    # A set of a few sources per target cannot tell rankings apart: it is left out, said so
    few = evaluation({"datasize": (1.0, 0.0), "sized": (1.5, 0.0)}, sources=3)
    three = _evidence_free_line({"a": one, "b": other, "probes": few}, methods)
    assert "in each of a, b (not probes: fewer than 10 sources per target): **sized**" in three
    assert "in b: **taskemb**" in _evidence_free_line({"b": other}, methods[::2])
    assert "in a: none" in _evidence_free_line({"a": one}, methods[::2])
    assert "Evaluate datasize" in _evidence_free_line({"a": one}, ["sized", "taskemb"])
