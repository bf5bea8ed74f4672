"""Results CSV: appends that survive a crash mid-write, and per-pair means over seeds."""

from __future__ import annotations

import pytest

from workers.selection.results import (
    ResultsWriter,
    TransferRow,
    outcomes,
    read_results,
    reliability,
)

HEADER = "source,target,seed,score,baseline,gain,metric\n"


def test_rows_round_trip_through_the_writer(tmp_path) -> None:
    path = tmp_path / "r.csv"
    row = TransferRow("a", "b", 0, 71.5, 70.0, 1.5, "accuracy")
    with ResultsWriter(path) as writer:
        writer.write(row)
    with ResultsWriter(path) as writer:  # reopening appends, with no second header
        writer.write(TransferRow("c", "b", 0, 69.0, 70.0, -1.0, "accuracy"))
    assert path.read_text().count("source,target") == 1
    assert read_results(path)[0] == row
    assert len(read_results(path)) == 2


def test_a_line_torn_by_a_crash_is_ignored_and_cut_before_the_next_append(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "a,b,0,71.5,70.0,1.5,accuracy\nc,b,1,69.")  # killed mid-write
    assert [r.key for r in read_results(path)] == [("a", "b", 0)]
    with ResultsWriter(path) as writer:
        writer.write(TransferRow("c", "b", 1, 69.0, 70.0, -1.0, "accuracy"))
    assert [r.key for r in read_results(path)] == [("a", "b", 0), ("c", "b", 1)]


def test_a_complete_last_line_without_newline_is_kept(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "a,b,0,71.5,70.0,1.5,accuracy")  # a hand-made file
    with ResultsWriter(path) as writer:
        writer.write(TransferRow("c", "b", 0, 69.0, 70.0, -1.0, "accuracy"))
    assert [r.key for r in read_results(path)] == [("a", "b", 0), ("c", "b", 0)]


def test_user_files_may_give_a_baseline_or_a_gain_and_bad_rows_are_located(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("source,target,seed,score,baseline\na,b,0,72,70\n")
    assert read_results(path)[0].gain == 2.0
    path.write_text(HEADER + "a,b,zero,72,70,2,accuracy\na,c,0,1,1,0,accuracy\n")
    with pytest.raises(ValueError, match=r"r.csv:2"):
        read_results(path)
    path.write_text("source,target\na,b\n")
    with pytest.raises(ValueError, match="missing column"):
        read_results(path)


def test_outcomes_average_seeds_and_drop_self_transfer() -> None:
    rows = [
        TransferRow("a", "b", 0, 72.0, 70.0, 2.0, "accuracy"),
        TransferRow("a", "b", 1, 74.0, 70.0, 4.0, "accuracy"),
        TransferRow("b", "b", 0, 99.0, 70.0, 29.0, "accuracy"),
    ]
    result = outcomes(rows)
    assert list(result["b"]) == ["a"]
    assert (result["b"]["a"].score, result["b"]["a"].gain, result["b"]["a"].seeds) == (73, 3, 2)


def test_reliability_is_the_share_of_the_spread_that_is_not_seed_noise() -> None:
    def measured(gains: dict[str, list[float]]) -> dict:
        rows = [
            TransferRow(s, "t", seed, 50 + g, 50, g, "accuracy")
            for s, seeds in gains.items()
            for seed, g in enumerate(seeds)
        ]
        return outcomes(rows)["t"]

    # means 2 and 6 (spread: variance 8); each mean's seed noise: variance 2 / 2 seeds = 1
    assert reliability(measured({"a": [1, 3], "b": [5, 7]})) == pytest.approx(1 - 1 / 8)
    assert reliability(measured({"a": [0, 4], "b": [1, 3]})) == 0.0  # equal means
    assert reliability(measured({"a": [0, 10], "b": [4, 7]})) == 0.0  # noise beyond the spread
    assert reliability(measured({"a": [1], "b": [5]})) == 1.0  # one seed: nothing says noise
