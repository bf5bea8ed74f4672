"""The strategy comparison section: gains side by side, costs, and ranking agreement."""

from __future__ import annotations

import json

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
    files = StrategyFiles(tmp_path / "m.csv", tmp_path / "a.csv", tmp_path / "fusion")
    _write(files.sequential, sequential)
    _write(files.adapter, adapter_gains, cost=True)
    files.fusion.mkdir()
    stages = [{"seconds": 30.0, "trainable_params": 5000}] * 3
    fusion = {
        "target": "t1", "sources": list(SOURCES), "gain": {"mean": 2.5, "std": 0.5},
        "baseline": {"mean": 40.0}, "transfer_stages": stages,
    }  # fmt: skip
    (files.fusion / "t1.json").write_text(json.dumps(fusion))
    return files


def test_same_ranking_agrees_fully_and_loses_nothing(tmp_path):
    same = {(s, t): 0.5 * i for i, s in enumerate(SOURCES) for t in ("t1", "t2")}
    text = comparison_section(_files(tmp_path, same))
    assert "| t1 | 50.0 | +3.00 (s4) | +1.50 | 50.0 | +1.50 (s4) | +0.75 | +2.50 ± 0.50 |" in text
    assert "| t2 |" in text and "| other |" not in text
    assert "| **mean** | | **+1.00** | | **0.00** |" in text
    assert "| adapter | 11 | 60 | 100 of 1,000 |" in text
    assert "| fusion of 4 | 30 | (the adapters') | 5,000 |" in text


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
