"""The strategy comparison (issue 15): sequential, adapter and fusion on one protocol.

Reads what ``results/run-strategies.sh`` measured — sequential rows from the 1,000-row matrix
(``results/matrix.csv``, seeds 0-2), the adapter sweep (``results/strategy-adapter.csv``) and
the fusion sweep (``results/strategy-fusion.csv``: per target × seed, all the sources' adapters
fused) — and writes the "## Transfer strategies" section of ``docs/results.md`` (replacing it,
leaving the rest):

    python -m workers.research.strategies [--report docs/results.md]

Torch-free: it reads files only.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import spearmanr

from workers.selection.results import FUSED, Outcome, TransferRow, outcomes, read_results

HEADING = "## Transfer strategies"
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class StrategyFiles:
    sequential: Path = Path("results/matrix.csv")
    adapter: Path = Path("results/strategy-adapter.csv")
    fusion: Path = Path("results/strategy-fusion.csv")


@dataclass(frozen=True)
class Fusion:
    """One target's fusion runs (all the sweep's sources but the target, fused), over seeds."""

    target: str
    gain: float  # mean over seeds
    gain_std: float


def comparison_section(files: StrategyFiles = StrategyFiles()) -> str:
    """The markdown section; says what is missing where a file is not there yet."""
    if not files.adapter.is_file():
        return f"{HEADING}\n\nNot measured yet: run `bash results/run-strategies.sh`.\n"
    adapter_rows = read_results(files.adapter)
    sources = sorted({r.source for r in adapter_rows})
    targets = sorted({r.target for r in adapter_rows})
    sequential_rows = [
        r
        for r in read_results(files.sequential)
        if r.source in sources and r.target in targets and r.seed in SEEDS
    ]
    sequential, adapter = outcomes(sequential_rows), outcomes(adapter_rows)
    fusion_rows = _fusions_of_all(files.fusion, sources, targets)
    fusions = read_fusions(fusion_rows)
    parts = [
        HEADING,
        _protocol(sources, targets, adapter_rows, fusion_rows, fusions),
        gains_table(targets, sequential, adapter, fusions, sequential_rows, adapter_rows),
        cost_table(adapter_rows, fusion_rows),
        agreement_section(targets, sequential, adapter),
    ]
    return "\n\n".join(parts) + "\n"


def _fusions_of_all(path: Path, sources: list[str], targets: list[str]) -> list[TransferRow]:
    """The fusion sweep's runs that fused every source but the target (a sweep resumed with
    other sources leaves rows of another fusion behind), one per target × seed: the last."""
    found: dict[tuple[str, int], TransferRow] = {}
    for row in read_results(path) if path.is_file() else []:
        fused = set(row.source.split(FUSED))
        if row.target in targets and row.seed in SEEDS and fused == set(sources) - {row.target}:
            found[(row.target, row.seed)] = row
    return list(found.values())


def read_fusions(rows: list[TransferRow]) -> dict[str, Fusion]:
    """Per target, the fusion sweep's runs (one per seed; ``source`` is the fused sources'
    names joined by "+") as their mean gain and its standard deviation over seeds."""
    by_target: dict[str, list[TransferRow]] = {}
    for row in rows:
        by_target.setdefault(row.target, []).append(row)
    found = {}
    for target, runs in sorted(by_target.items()):
        gains = [r.gain for r in runs]
        found[target] = Fusion(
            target=target,
            gain=statistics.fmean(gains),
            gain_std=statistics.stdev(gains) if len(gains) > 1 else 0.0,
        )
    return found


def _protocol(sources, targets, adapter_rows, fusion_rows, fusions) -> str:
    runs = len(adapter_rows)
    fused = (
        f"{len(fusion_rows)} fusion runs over {len(fusions)} of {len(targets)} targets"
        if fusion_rows
        else "fusion not measured yet"
    )
    return (
        f"{len(sources)} sources × {len(targets)} targets × {len(SEEDS)} seeds, the 1,000-row "
        "matrix's protocol (sources 1,000 rows for 2 epochs; targets 200 rows for 3 epochs, "
        "200 scored, 64 tokens). **sequential** fine-tunes the whole encoder on the source, "
        "then on the target, against the target fine-tuned alone (its rows are "
        "`results/matrix.csv`'s). **adapter** trains a LoRA adapter per source over the frozen "
        "encoder (kept in the adapter library), then a fresh target adapter stacked over it, "
        "against a fresh target adapter alone. **fusion** fuses all the sources' adapters for "
        "each target (AdapterFusion), against the same adapter baseline. Gains are in target "
        f"metric points, mean over seeds. Measured so far: {runs} adapter runs, {fused} "
        "(`bash results/run-strategies.sh` resumes)."
    )


def gains_table(
    targets: Sequence[str],
    sequential: dict[str, dict[str, Outcome]],
    adapter: dict[str, dict[str, Outcome]],
    fusions: dict[str, Fusion],
    sequential_rows: list[TransferRow],
    adapter_rows: list[TransferRow],
) -> str:
    lines = [
        "| target | full baseline | sequential: best (source) | sequential: mean | adapter "
        "baseline | adapter: best (source) | adapter: mean | fusion of all |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        fusion = fusions.get(target)
        fused = f"{fusion.gain:+.2f} ± {fusion.gain_std:.2f}" if fusion else "—"
        lines.append(
            f"| {target} | {_baseline(sequential_rows, target)} | {_best(sequential, target)} | "
            f"{_mean(sequential, target)} | {_baseline(adapter_rows, target)} | "
            f"{_best(adapter, target)} | {_mean(adapter, target)} | {fused} |"
        )
    return "\n".join(lines)


def cost_table(adapter_rows: list[TransferRow], fusion_rows: list[TransferRow]) -> str:
    timed = [r for r in adapter_rows if r.seconds is not None]
    if not timed:
        return ""
    lines = [
        "What a run cost (seconds on the shared 2-core CPU, medians; the source stage is trained "
        "once per source and shared by all its runs, fusion's by the adapter runs too: it is "
        "the fused adapters' trainings added up):",
        "",
        "| strategy | target run (s) | source stage (s) | trained parameters |",
        "|---|---|---|---|",
        _cost_line("adapter", timed),
    ]
    fused = [r for r in fusion_rows if r.seconds is not None]
    if fused:
        lines.append(_cost_line(f"fusion of {len(fused[0].source.split(FUSED))}", fused))
    return "\n".join(lines)


def _cost_line(name: str, rows: list[TransferRow]) -> str:
    """Median seconds of a run and of the source stage(s) it started from (each counted once)."""
    source_seconds = {r.source: r.source_seconds for r in rows if r.source_seconds}
    source = statistics.median(source_seconds.values()) if source_seconds else float("nan")
    return (
        f"| {name} | {statistics.median(r.seconds for r in rows):.0f} | {source:.0f} | "
        f"{rows[0].trainable_params:,} of {rows[0].total_params:,} |"
    )


def agreement_section(
    targets: Sequence[str],
    sequential: dict[str, dict[str, Outcome]],
    adapter: dict[str, dict[str, Outcome]],
) -> str:
    """Whether full fine-tuning's ranking of sources predicts adapter transfer's (Poth et al.
    2021 found it largely does): Spearman per target over the sources both measured, and the
    adapter gain lost by taking sequential's best source instead of adapter's own best."""
    rhos, regrets, lines = [], [], []
    for target in targets:
        common = sorted(set(sequential.get(target, {})) & set(adapter.get(target, {})))
        if len(common) < 3:
            continue
        seq = [sequential[target][s].gain for s in common]
        ada = [adapter[target][s].gain for s in common]
        picked = common[seq.index(max(seq))]
        regret = max(ada) - adapter[target][picked].gain
        regrets.append(regret)
        if len(set(seq)) == 1 or len(set(ada)) == 1:  # a ranking of ties: ρ is undefined
            shown = "— (all gains equal)"
        else:
            rho = float(spearmanr(seq, ada).statistic)
            rhos.append(rho)
            shown = f"{rho:+.2f}"
        lines.append(f"| {target} | {len(common)} | {shown} | {picked} | {regret:.2f} |")
    if not regrets:
        return ""
    mean_rho = f"**{statistics.fmean(rhos):+.2f}**" if rhos else "—"
    head = (
        "Does full fine-tuning's ranking of sources predict adapter transfer? Per target, "
        "Spearman ρ between the sources' sequential and adapter gains, and the adapter gain "
        "lost by training the adapter on sequential's best source rather than adapter's best:"
    )
    table = [
        "| target | sources | ρ | sequential's best | adapter gain lost |",
        "|---|---|---|---|---|",
        *lines,
        f"| **mean** | | {mean_rho} | | **{statistics.fmean(regrets):.2f}** |",
    ]
    return head + "\n\n" + "\n".join(table)


def _baseline(rows: list[TransferRow], target: str) -> str:
    by_seed = {r.seed: r.baseline for r in rows if r.target == target}
    return f"{statistics.fmean(by_seed.values()):.1f}" if by_seed else "—"


def _best(found: dict[str, dict[str, Outcome]], target: str) -> str:
    measured = found.get(target, {})
    if not measured:
        return "—"
    source = max(measured, key=lambda s: measured[s].gain)
    return f"{measured[source].gain:+.2f} ({source})"


def _mean(found: dict[str, dict[str, Outcome]], target: str) -> str:
    measured = found.get(target, {})
    return f"{statistics.fmean(o.gain for o in measured.values()):+.2f}" if measured else "—"


def replace_section(report: Path, section: str) -> None:
    """Put ``section`` in ``report`` in place of its former one (or at the end)."""
    text = report.read_text() if report.is_file() else ""
    start = text.find(HEADING)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    report.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the strategy comparison section.")
    parser.add_argument("--report", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()
    replace_section(args.report, comparison_section())
    print(f"strategy comparison written to {args.report}")


if __name__ == "__main__":
    main()
