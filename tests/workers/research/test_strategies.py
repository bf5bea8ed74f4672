"""The strategy comparison section: gains side by side, costs, and ranking agreement."""

from __future__ import annotations

from workers.research.strategies import StrategyFiles, comparison_section, replace_section
from workers.selection.results import ResultsWriter, TransferRow

SOURCES = ("s1", "s2", "s3", "s4")


def _write(path, gains: dict[tuple[str, str], float], cost: bool = False) -> None:
    with ResultsWriter(path) as writer:
        for (source, target), gain in gains.items():
            for seed in (0, 1, 2):
                extra = {}
                if cost:
                    extra = dict(
                        seconds=10.0 + seed, trainable_params=100, total_params=1000,
                        peak_memory_mb=900.0, source_seconds=60.0,
                    )  # fmt: skip
                writer.write(
                    TransferRow(source, target, seed, 50 + gain, 50.0, gain, "accuracy", **extra)
                )


def _files(tmp_path, adapter_gains) -> StrategyFiles:
    sequential = {(s, t): float(i) for i, s in enumerate(SOURCES) for t in ("t1", "t2")}
    sequential[("s1", "other")] = 9.0  # outside the compared targets: left out
    files = StrategyFiles(tmp_path / "m.csv", tmp_path / "a.csv", tmp_path / "f.csv")
    _write(files.sequential, sequential)
    _write(files.adapter, adapter_gains, cost=True)
    # The fusion sweep: one run per seed for t1 over the four sources' adapters (t2 not yet)
    with ResultsWriter(files.fusion) as writer:
        for seed, gain in enumerate((2.0, 2.5, 3.0)):
            writer.write(
                TransferRow(
                    "+".join(SOURCES), "t1", seed, 40 + gain, 40.0, gain, "accuracy",
                    seconds=30.0, trainable_params=5000, total_params=6000,
                    peak_memory_mb=900.0, source_seconds=240.0,
                )
            )  # fmt: skip
        # A fusion of fewer sources, left behind by a sweep run with other sources: not "all"
        writer.write(TransferRow("s1+s2", "t1", 0, 90.0, 40.0, 50.0, "accuracy"))
    return files


def test_same_ranking_agrees_fully_and_loses_nothing(tmp_path):
    same = {(s, t): 0.5 * i for i, s in enumerate(SOURCES) for t in ("t1", "t2")}
    text = comparison_section(_files(tmp_path, same))
    assert "| t1 | 50.0 | +3.00 (s4) | +1.50 | 50.0 | +1.50 (s4) | +0.75 | +2.50 ± 0.50 |" in text
    assert "| t2 |" in text and "| other |" not in text
    assert text.count(" | — |") == 1  # t2's fusion column: not measured
    assert "3 fusion runs over 1 of 2 targets" in text
    assert "| **mean** | | **+1.00** | | **0.00** |" in text
    assert "| adapter | 11 | 60 | 100 of 1,000 |" in text
    assert "| fusion of 4 | 30 | 240 | 5,000 of 6,000 |" in text


def test_without_the_fusion_sweep_fusion_is_not_measured_yet(tmp_path):
    files = _files(tmp_path, {(s, t): 0.5 * i for i, s in enumerate(SOURCES) for t in ("t1", "t2")})
    files.fusion.unlink()
    text = comparison_section(files)
    assert "fusion not measured yet" in text and "| fusion of 4 |" not in text
    assert "| t1 |" in text and text.count(" | — |") == 2


def test_reversed_ranking_shows_the_loss(tmp_path):
    reversed_ = {(s, t): -0.5 * i for i, s in enumerate(SOURCES) for t in ("t1", "t2")}
    text = comparison_section(_files(tmp_path, reversed_))
    # sequential's best is s4, adapter's worst: 1.5 points below adapter's best (s1)
    assert "| t1 | 4 | -1.00 | s4 | 1.50 |" in text


def test_section_replaces_its_former_self_and_keeps_the_rest(tmp_path):
    report = tmp_path / "results.md"
    report.write_text(
        "# Results\n\n## Before\n\nkept\n\n## Transfer strategies\n\nold\n\n## After\n\nalso kept\n"
    )
    replace_section(report, "## Transfer strategies\n\nnew\n")
    text = report.read_text()
    assert "old" not in text and "new" in text and "kept" in text and "also kept" in text
    assert text.index("## Before") < text.index("new") < text.index("## After")
    missing = comparison_section(StrategyFiles(adapter=tmp_path / "none.csv"))
    assert "Not measured yet" in missing


def test_a_target_whose_adapter_gains_all_tie_has_no_rho_and_the_mean_skips_it(tmp_path):
    gains = {(s, "t1"): 0.5 * i for i, s in enumerate(SOURCES)}
    gains |= {(s, "t2"): 0.0 for s in SOURCES}  # an adapter that learns nothing: all equal
    text = comparison_section(_files(tmp_path, gains))
    assert "| t2 | 4 | — (all gains equal) |" in text
    assert "| **mean** | | **+1.00** |" in text  # t1's ρ alone
