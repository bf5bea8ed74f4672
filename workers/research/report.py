"""``docs/results.md``: the transfer matrix, the evaluation, and the figures, from one command.

``taskrec evaluate RESULTS.csv --within-type --report docs/results.md`` writes the Markdown page
and, in a folder beside it, three figures: the evaluation summary, the per-target gains (one dot
per source, the no-transfer baseline as the zero line: the view of Vu et al. 2020, Figure 2) and
a 2-D map of the tasks in TaskEmb and TextEmb space (their Figure 3; PCA of the L2-normalised
vectors, TaskEmb's components concatenated). The page says which of the project's targets the
evaluation meets and which it misses.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.research.evaluate import Evaluation, plot
from workers.research.metrics import nanmean
from workers.selection.rankers import LearnedRanker, Library
from workers.selection.results import TransferRow, outcomes, reliability

# The project's goals for the learned ranker (issue: selection quality), checked on the page.
CHALLENGERS = ("datasize", "semb", "taskemb")
REGRET_GOAL = 1.0  # Regret@3 in %
# A target's ranking of sources counts as measured, not noise, from this reliability on.
RELIABLE = 0.5
RELEVANCE_WORDS = {
    "shift": "shifted so that each target's worst source has relevance 0",
    "clip": "negative gains count as 0",
}
POOL_WORDS = {
    "library": "Each method ranks the whole library but the target, as the API does, and the "
    "measured sources are scored in the order it gave them (`bench/evidence_api.py` checks "
    "that the API's learned ranking is this one; the API's learned ranker re-orders the fused "
    "top 100, the whole of a library of up to 100 tasks).",
    "measured": "Each method ranks the target's measured sources alone (the API ranks the whole "
    "library: `--pool library` scores what it serves).",
}
FIRM = 0.9  # a met goal that holds in fewer resamples than this is called out as shaky
BOOTSTRAP_DRAWS = 2000  # resamples of the targets behind each goal's "how often it holds"
MIN_SOURCES_TO_JUDGE = 10  # sources per target a set must rank to tell rankings apart


@dataclass(frozen=True)
class Check:
    goal: str
    met: bool
    detail: str
    holds: float = math.nan  # share of resamples of the targets in which the goal holds


def write_report(
    rows: list[TransferRow],
    evaluation: Evaluation,
    library: Library,
    path: str | Path,
    command: str,
    sweep: dict | None = None,
    ranker: LearnedRanker | None = None,
    fresh: Sequence[str] = (),
    evidence: str | None = None,
) -> Path:
    """Write the page and its figures; ``sweep`` = the CSV's pinned settings (``.sweep.json``),
    ``ranker`` = the learned ranker fitted on every row (its weights are shown), ``fresh`` =
    targets measured after the ranker's settings were chosen (scored apart), ``evidence`` = the
    evidence sets' section (:func:`evidence_section`)."""
    path = Path(path)
    figures = path.with_suffix("")  # docs/results.md -> docs/results/
    figures.mkdir(parents=True, exist_ok=True)
    plot(evaluation, figures / "evaluation.png")
    plot_gains(rows, figures / "gains.png")
    plot_map(library, figures / "map.png")
    checks = check_goals(evaluation)
    within = check_goals(evaluation, "within") if "within" in evaluation.config.scopes else []
    parts = [
        "# Selection quality: measured transfers and how well each method ranks them",
        f"Regenerate with:\n\n```bash\n{command}\n```",
        _coverage(rows, sweep),
        "## How well each method ranks sources (leave-one-target-out)",
        "ρ: average rank of the truly best source (1 is perfect). NDCG over the full ranking, "
        f"gains as relevance ({RELEVANCE_WORDS[evaluation.config.relevance]}). Regret@k: how far "
        "(in % of the best score) the best of the top-k picks falls short of the best source. "
        "Random is its exact expectation; oracle the ceiling. "
        + POOL_WORDS[evaluation.config.pool],
        evaluation.table(),
        f"![evaluation]({figures.name}/evaluation.png)",
        "## Goals",
        goal_list(checks),
        *([_WITHIN_GOALS + "\n\n" + goal_list(within)] if within else []),
        shortfall_section(checks, evaluation, rows, within),
        *([fresh_section(evaluation, fresh)] if fresh else []),
        reliable_section(evaluation, rows),
        *([learned_section(ranker)] if ranker is not None else []),
        *([evidence] if evidence else []),
        "## Gains per target",
        "Each dot is one source's mean gain over seeds; the line at 0 is the no-transfer baseline.",
        f"![gains]({figures.name}/gains.png)",
        "## The matrix (mean gain over seeds, target metric points)",
        matrix_table(rows),
        "## The tasks in embedding space",
        f"![map]({figures.name}/map.png)",
    ]
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


_WITHIN_GOALS = (
    "The same goals within the target's own task type (sources of other types set aside), "
    "for reference: the project's goals are the all-type ones above."
)


@dataclass(frozen=True)
class EvidenceSetFile:
    """One evidence set as the report shows it: its rows and the settings its sweep pinned."""

    name: str
    rows: list[TransferRow]
    pinned: dict


def evidence_section(
    sets: Sequence[EvidenceSetFile],
    own: dict[str, Evaluation],
    crossed: dict[tuple[str, str], Evaluation],
    library_tasks: Sequence[str],
) -> str:
    """The evidence sets side by side: what each measured, how each method ranks on each
    (leave-one-target-out), how a ranker fitted on one set ranks another's targets, and how
    many library tasks have a donor record in them."""
    lines = [
        "## Evidence sets",
        "Measured transfers belong to the model fine-tuned and the protocol that measured them. "
        "Each set below is scored leave-one-target-out on its own, then each set's targets are "
        "ranked by a learned ranker fitted on another set (none of the ranked target's rows), "
        "which says how far one protocol's evidence carries to the other's.",
        "",
        "| set | transfer model | source rows | source epochs | targets | sources | seeds | rows |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in sets:
        rows, pinned = item.rows, item.pinned
        cells = [
            item.name,
            str(pinned.get("encoder", "?")),
            f"≤ {pinned['source_n']:,}" if pinned.get("source_n") else "all",
            f"{pinned.get('source_epochs', '?')}",
            str(len({r.target for r in rows})),
            str(len({r.source for r in rows})),
            str(len({r.seed for r in rows})),
            f"{len(rows):,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Leave-one-target-out on each set (ρ ↓ / Regret@3 % ↓):", ""]
    methods = list(dict.fromkeys(m for e in own.values() for m in e.methods()))
    lines += ["| method | " + " | ".join(own) + " |", "|---|" + "---|" * len(own)]
    for method in methods:
        cells = [_rho_regret(own[name], method) for name in own]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", _evidence_free_line(own, methods)]
    if crossed:
        lines += [
            "",
            "A learned ranker fitted on one set, scored on another's targets (ρ ↓ / Regret@3 % ↓; "
            "the diagonal is the set's own leave-one-target-out):",
            "",
            "| fitted on \\ scored on | " + " | ".join(own) + " |",
            "|---|" + "---|" * len(own),
        ]
        for train in own:
            cells = [
                _rho_regret(own[test] if train == test else crossed[(train, test)], "learned")
                for test in own
            ]
            lines.append(f"| {train} | " + " | ".join(cells) + " |")
        lines += ["", _best_fits_line(own, crossed)]
    donors = {r.source for item in sets for r in item.rows}
    covered = [t for t in library_tasks if t in donors]
    missing = sorted(set(library_tasks) - donors)
    lines += [
        "",
        f"**Calibration coverage:** {len(covered)} of {len(library_tasks)} library tasks have a "
        "donor record in these sets"
        + (f"; without one: {', '.join(missing)}." if missing else "."),
    ]
    return "\n".join(lines)


def _best_fits_line(own: dict[str, Evaluation], crossed: dict[tuple[str, str], Evaluation]) -> str:
    """For each set's targets, the set whose fitted ranker ranks them best (lowest Regret@3,
    then ρ): the evidence a deployment should rank that protocol's targets with, which need
    not be the targets' own set."""
    parts = []
    for test in own:
        scored = {
            train: _all_scope(own[test] if train == test else crossed[(train, test)], "learned")
            for train in own
            if train == test or (train, test) in crossed
        }
        scored = {t: s for t, s in scored.items() if not math.isnan(s[1])}
        if not scored:
            continue
        best = min(scored, key=lambda t: (scored[t][1], scored[t][0]))
        rho, regret = scored[best]
        parts.append(f"{test}'s targets by **{best}** (ρ {rho:.2f}, Regret@3 {regret:.2f}%)")
    return (
        "Ranked best (lowest Regret@3, then ρ): " + "; ".join(parts) + "."
        if parts
        else "(No learned ranker was scored on these sets.)"
    )


def _evidence_free_line(own: dict[str, Evaluation], methods: list[str]) -> str:
    """Which served evidence-free methods beat largest-first on both ρ and Regret@3 in every
    set: what can rank for a transfer model nobody measured (the ``evidence_free_method``
    setting)."""
    from workers.selection.methods import EVIDENCE_FREE_SERVED

    def beats(evaluation: Evaluation, method: str) -> bool:
        (rho, regret), (size_rho, size_regret) = (
            _all_scope(evaluation, method),
            _all_scope(evaluation, "datasize"),
        )
        return rho < size_rho and regret < size_regret  # False where either is missing (nan)

    free = [m for m in methods if m in EVIDENCE_FREE_SERVED]
    if not free or "datasize" not in methods:
        return "(Evaluate datasize and the evidence-free methods to compare them here.)"
    # A set whose targets rank a handful of sources (a calibration's probes, early on) cannot
    # tell rankings apart: ρ sits near 1 for every method
    judged = {n: e for n, e in own.items() if _mean_sources(e) >= MIN_SOURCES_TO_JUDGE}
    if not judged:
        return f"(No set ranks {MIN_SOURCES_TO_JUDGE} or more sources per target yet.)"
    winners = [m for m in free if all(beats(e, m) for e in judged.values())]
    left_out = sorted(set(own) - set(judged))
    sets = f"each of {', '.join(judged)}" if len(judged) > 1 else f"{', '.join(judged)}"
    if left_out:
        sets += (
            f" (not {', '.join(left_out)}: fewer than {MIN_SOURCES_TO_JUDGE} sources per target)"
        )
    return (
        "Without evidence of the user's transfer model, an evidence-free method ranks. Of those "
        f"served ({', '.join(free)}), beating datasize on both ρ and Regret@3 in {sets}: "
        + (", ".join(f"**{m}**" for m in winners) if winners else "none")
        + ". The service's `evidence_free_method` setting names the one it uses for a transfer "
        "model that no evaluation measured."
    )


def _mean_sources(evaluation: Evaluation) -> float:
    """How many sources its targets ranked, on average (over all types)."""
    counts = [r.sources for r in evaluation.results if r.scope == "all"]
    return sum(counts) / len(counts) if counts else 0.0


def _all_scope(evaluation: Evaluation, method: str) -> tuple[float, float]:
    """(ρ, Regret@3 %) of ``method`` over all types; nan where it was not scored."""
    row = next(
        (r for r in evaluation.summary() if r["method"] == method and r["scope"] == "all"), None
    )
    if row is None:
        return math.nan, math.nan
    return row["rho"], row.get("regret@3", math.nan)


def _rho_regret(evaluation: Evaluation, method: str) -> str:
    rho, regret = _all_scope(evaluation, method)
    return "–" if math.isnan(rho) else f"{rho:.2f} / {regret:.2f}"


def goal_list(checks: list[Check]) -> str:
    return "\n".join(f"- **{'met' if c.met else 'MISSED'}** — {c.goal}: {c.detail}" for c in checks)


def shortfall_section(
    checks: list[Check],
    evaluation: Evaluation,
    rows: list[TransferRow],
    within: list[Check] | None = None,
) -> str:
    """The missed goals, plainly; for a missed Regret@3 goal, how much of the miss comes from the
    targets whose sources differ by seed noise alone (where no ranking can be judged). Misses
    within the target's type (``within``) are listed after the all-type ones."""
    missed = [c for c in checks if not c.met]
    missed_within = [c for c in within or [] if not c.met]
    head = "## What falls short"
    if not missed and not missed_within and all(c.holds >= FIRM for c in checks):
        return f"{head}\n\nNothing: every goal above is met, in at least {FIRM:.0%} of resamples."
    lines = [head]
    if missed:
        lines.append("\n".join(f"- {c.goal}: {c.detail}" for c in missed))
    else:
        lines.append("Every all-type goal is met.")
    shaky = [c for c in checks if c.met and c.holds < FIRM]
    if shaky:
        lines.append(
            f"Met on the mean but not firmly (in fewer than {FIRM:.0%} of resamples of the "
            "targets), so a few more targets could turn them:\n\n"
            + "\n".join(f"- {c.goal}: {c.detail}" for c in shaky)
        )
    measured = outcomes(rows)
    noisy = sorted(t for t, m in measured.items() if reliability(m) < RELIABLE)
    if noisy and any("Regret@3" in c.goal for c in missed):
        lines.append(_regret_by_reliability(evaluation, noisy))
    if missed_within:
        lines.append(
            "Within the target's own type learned also misses:\n\n"
            + "\n".join(f"- {c.goal}: {c.detail}" for c in missed_within)
        )
    return "\n\n".join(lines)


def fresh_section(evaluation: Evaluation, fresh: Sequence[str]) -> str:
    """The evaluation on the targets measured after the learned ranker's settings were chosen:
    the out-of-sample part of the comparison."""
    head = "## Targets measured after the ranker's settings were chosen"
    why = (
        "The learned ranker's settings (its shrinkage κ, the other-type share, non-negative "
        "weights, reliability weighting, how the prior is picked) were chosen by comparing "
        "leave-one-target-out scores on the targets measured before them, so on those targets "
        "its numbers flatter it. These were measured after the choices were frozen, so on them "
        "the comparison is out of sample"
    )
    measured = sorted({r.target for r in evaluation.results} & set(fresh))
    if not measured:
        return f"{head}\n\n{why}; none of them ({', '.join(fresh)}) is measured yet."
    subset = Evaluation(
        evaluation.config, [r for r in evaluation.results if r.target in measured], []
    )
    return "\n\n".join(
        [
            head,
            f"{why}: {', '.join(measured)} ({len(measured)} target{'s' * (len(measured) > 1)}).",
            subset.table(),
            goal_list(check_goals(subset)),
        ]
    )


def _regret_by_reliability(evaluation: Evaluation, noisy: list[str]) -> str:
    """Learned's (and random's) Regret@3 on the noisy targets and on the rest; where the rest
    miss the goal too, the target that costs most."""

    def mean_regret(method: str, targets: set[str]) -> tuple[float, int]:
        values = [
            r.regret[3]
            for r in evaluation.results
            if (r.scope, r.method) == ("all", method) and r.target in targets and 3 in r.regret
        ]
        return nanmean(values), sum(not math.isnan(v) for v in values)

    everyone = {r.target for r in evaluation.results if r.scope == "all"}
    noisy = sorted(everyone & set(noisy))
    rest = everyone - set(noisy)
    learned_noisy, n_noisy = mean_regret("learned", set(noisy))
    random_noisy, _ = mean_regret("random", set(noisy))
    learned_rest, n_rest = mean_regret("learned", rest)
    total = n_noisy + n_rest
    text = (
        f"On the {n_noisy} targets whose sources differ by seed noise alone (reliability < "
        f"{RELIABLE:g}, the next table: {', '.join(noisy)}) learned's Regret@3 averages "
        f'{learned_noisy:.2f}% and a random ranking\'s {random_noisy:.2f}%: which source "won" '
        "there is a coin toss, so no ranking can be judged on them, yet they add "
        f"{learned_noisy * n_noisy / total:.2f} points to learned's mean over all targets."
    )
    if not n_rest:
        return text
    text += f" On the other {n_rest} targets learned's Regret@3 is {learned_rest:.2f}%"
    if learned_rest <= REGRET_GOAL:
        return text + (
            ". Meeting the goal over every target needs the noisy ones measured with less noise "
            "(more seeds, or more target examples where the task has them): no ranker can "
            "supply it."
        )
    worst = max(
        (r for r in evaluation.results if (r.scope, r.method) == ("all", "learned")),
        key=lambda r: _nan_as_zero(r.regret.get(3, math.nan)),
    )
    return text + (
        f", above the goal as well: there the miss is the ranker's. Its largest part is "
        f"{worst.target}, whose best source learned ranked at place {worst.rank:g} (Regret@3 "
        f"{worst.regret[3]:.2f}%, {worst.regret[3] / total:.2f} points of the mean)."
    )


def _nan_as_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def reliable_section(evaluation: Evaluation, rows: list[TransferRow]) -> str:
    """Per target: how far its sources differ beyond seed noise; then the evaluation again on
    the targets where they do (on the others, which source is "best" is a coin toss)."""
    measured = outcomes(rows)
    lines = [
        "## Which targets can tell sources apart",
        "Reliability: the share of the spread of a target's mean gains (over sources) that is "
        "not seed noise (the squared standard error of each mean, from its seeds). Near 0 the "
        "sources' order on that target is noise, and so is every method's ρ there.",
        target_table(rows),
    ]
    kept = {t for t, m in measured.items() if reliability(m) >= RELIABLE}
    if kept and len(kept) < len(measured):
        subset = Evaluation(
            evaluation.config,
            [r for r in evaluation.results if r.target in kept],
            evaluation.skipped,
        )
        lines += [
            f"The evaluation on the {len(kept)} targets with reliability ≥ {RELIABLE:g} "
            f"({', '.join(sorted(kept))}):",
            subset.table(),
        ]
    return "\n\n".join(lines)


def target_table(rows: list[TransferRow]) -> str:
    """Per target: baseline, the best source and its gain, spread, seed noise, reliability."""
    measured = outcomes(rows)
    head = ["target", "baseline", "best source (gain)", "spread (sd)", "seed noise (sd)"]
    head.append("reliability")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for target, by_source in sorted(measured.items()):
        baseline = statistics.fmean(r.baseline for r in rows if r.target == target)
        best = max(by_source, key=lambda s: by_source[s].gain)
        gains = [o.gain for o in by_source.values()]
        spread = statistics.stdev(gains) if len(gains) > 1 else math.nan
        noise = [o.gain_noise for o in by_source.values() if not math.isnan(o.gain_noise)]
        noise_sd = math.sqrt(statistics.fmean(noise)) if noise else math.nan
        lines.append(
            f"| {target} | {baseline:.1f} | {best} ({by_source[best].gain:+.1f}) | "
            f"{spread:.2f} | {noise_sd:.2f} | {reliability(by_source):.2f} |"
        )
    return "\n".join(lines)


def learned_section(ranker: LearnedRanker) -> str:
    """What the learned ranker fitted on every row leans on: its prior, κ and feature weights."""
    head = "## The learned ranker, fitted on every row"
    if ranker.model is None:
        return f"{head}\n\nToo few measured targets to fit: it ranks by its prior ({ranker.prior})."
    config = ranker.config
    lines = [
        head,
        f"Prior: **{ranker.prior}**{_prior_reason(config.prior)}. A source measured as a "
        "donor on n targets of the ranked target's type gets "
        f"model weight n / (n + κ), κ = **{config.shrinkage:g}**, a target of another type "
        f"counting **{config.other_type_share:g}** toward n. "
        "Weights are per standard deviation of a feature, fitted on gain percentiles within each "
        "target and kept ≥ 0; a 0 means the evidence gave the feature nothing to add.",
        "| feature | weight |\n|---|---|",
    ]
    weights = sorted(ranker.coefficients().items(), key=lambda kv: (-kv[1], kv[0]))
    lines[-1] += "".join(
        f"\n| {name} | {weight:+.3f} |" if weight else f"\n| {name} | 0 |"
        for name, weight in weights
    )
    if config.weigh_by_reliability:
        lines.append(
            "Each measured target counts in the fit, the donor record and the choice of prior by "
            "its reliability (the table above): the share of the spread of its sources' mean "
            "gains that is not seed noise."
        )
    return "\n\n".join(lines)


def _prior_reason(prior: str) -> str:
    if prior != "auto":
        return " (as configured)"
    return (
        " (fused, which joins TaskEmb and TextEmb, unless another similarity put the measured "
        "targets' best sources higher by more than a standard error)"
    )


def check_goals(evaluation: Evaluation, scope: str = "all") -> list[Check]:
    """Learned beats DataSize, SEmb and TaskEmb on ρ and Regret@3; its Regret@3 ≤ 1%. Each check
    says how often it would hold on targets resampled with replacement (a paired bootstrap):
    a mean over a dozen targets can hinge on one of them."""
    summary = {r["method"]: r for r in evaluation.summary() if r["scope"] == scope}
    learned = summary.get("learned")
    if learned is None:
        return [Check("the learned ranker was evaluated", False, "not among --methods")]
    checks = []
    for metric, label in (("rho", "ρ"), ("regret@3", "Regret@3")):
        for rival in CHALLENGERS:
            if rival not in summary or metric not in learned:
                continue
            mine, theirs = learned[metric], summary[rival][metric]
            pairs = paired_values(evaluation, scope, rival, metric)
            better, equal, worse = _better_equal_worse(pairs)
            share = bootstrap_share_lower(pairs)
            detail = (
                f"{mine:.2f} vs {theirs:.2f}; target by target better on {better}, "
                f"equal on {equal}, worse on {worse}; lower in {share:.0%} of "
                f"{BOOTSTRAP_DRAWS:,} resamples of the targets"
            )
            goal = f"learned beats {rival} on {label}"
            checks.append(Check(goal, mine < theirs, detail, share))
    regret = learned.get("regret@3", math.nan)
    mine = [
        r.regret.get(3, math.nan)
        for r in evaluation.results
        if (r.scope, r.method) == (scope, "learned")
    ]
    low, high = bootstrap_interval(mine)
    share = bootstrap_share_at_most(mine, REGRET_GOAL)
    detail = (
        f"{regret:.2f}% (over resampled targets, 90% of the means lie in {low:.2f}–{high:.2f}%; "
        f"≤ {REGRET_GOAL:g}% in {share:.0%})"
    )
    goal = f"learned Regret@3 ≤ {REGRET_GOAL:g}%"
    checks.append(Check(goal, regret <= REGRET_GOAL, detail, share))
    return checks


def paired_values(evaluation: Evaluation, scope: str, rival: str, metric: str) -> np.ndarray:
    """Per target measured by both, learned's and ``rival``'s ``metric`` ("rho" or "regret@k");
    shape (targets, 2), targets where either is undefined left out."""

    def value(result) -> float:
        return result.rank if metric == "rho" else result.regret[int(metric.split("@")[1])]

    def of(method: str) -> dict[str, float]:
        return {
            r.target: value(r) for r in evaluation.results if (r.scope, r.method) == (scope, method)
        }

    mine, theirs = of("learned"), of(rival)
    pairs = [(mine[t], theirs[t]) for t in sorted(mine.keys() & theirs.keys())]
    return np.array([p for p in pairs if not any(map(math.isnan, p))], dtype=float).reshape(-1, 2)


def head_to_head(
    evaluation: Evaluation, scope: str, rival: str, metric: str
) -> tuple[int, int, int]:
    """On how many targets learned's ``metric`` (lower is better) is better, equal and worse
    than ``rival``'s."""
    return _better_equal_worse(paired_values(evaluation, scope, rival, metric))


def _better_equal_worse(pairs: np.ndarray) -> tuple[int, int, int]:
    better = int(np.sum(pairs[:, 0] < pairs[:, 1] - 1e-9))
    worse = int(np.sum(pairs[:, 0] > pairs[:, 1] + 1e-9))
    return better, len(pairs) - better - worse, worse


def bootstrap_share_lower(pairs: np.ndarray, seed: int = 0) -> float:
    """Share of resamples of the targets (with replacement, the pairs kept together) in which the
    first column's mean is strictly below the second's."""
    if not len(pairs):
        return math.nan
    draws = _resample(len(pairs), seed)
    differences = (pairs[draws, 0] - pairs[draws, 1]).mean(axis=1)
    return float(np.mean(differences < -1e-9))


def bootstrap_interval(values: list[float], seed: int = 0) -> tuple[float, float]:
    """The central 90% of the mean over resamples of the targets (NaN values left out)."""
    means = _resampled_means(values, seed)
    if not len(means):
        return math.nan, math.nan
    low, high = np.percentile(means, [5, 95])
    return float(low), float(high)


def bootstrap_share_at_most(values: list[float], bound: float, seed: int = 0) -> float:
    """Share of resamples of the targets whose mean is at most ``bound`` (NaN values left out)."""
    means = _resampled_means(values, seed)
    return float(np.mean(means <= bound)) if len(means) else math.nan


def _resampled_means(values: list[float], seed: int) -> np.ndarray:
    kept = np.array([v for v in values if not math.isnan(v)], dtype=float)
    return kept[_resample(len(kept), seed)].mean(axis=1) if len(kept) else kept


def _resample(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(BOOTSTRAP_DRAWS, n))


def matrix_table(rows: list[TransferRow]) -> str:
    """Sources down, targets across; a cell is the mean gain (blank where not measured)."""
    measured = outcomes(rows)
    targets = sorted(measured)
    sources = sorted({s for m in measured.values() for s in m})
    baselines = {t: statistics.fmean(r.baseline for r in rows if r.target == t) for t in targets}
    head = ["source \\ target", *targets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append(
        "| *baseline score* | " + " | ".join(f"*{baselines[t]:.1f}*" for t in targets) + " |"
    )
    for source in sources:
        cells = [
            f"{measured[t][source].gain:+.1f}" if source in measured[t] else "" for t in targets
        ]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_gains(rows: list[TransferRow], path: Path) -> Path:
    """Per target, a dot per source at its mean gain; the baseline is the zero line."""
    plt = _pyplot()
    measured = outcomes(rows)
    targets = sorted(measured)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(targets), 4.5))
    jitter = np.random.default_rng(0)
    for i, target in enumerate(targets):
        gains = [o.gain for o in measured[target].values()]
        ax.scatter(i + jitter.uniform(-0.2, 0.2, len(gains)), gains, s=14, color="#08519c")
    ax.axhline(0.0, color="#cb181d", linewidth=1, label="no transfer (baseline)")
    ax.set_xticks(range(len(targets)), targets, rotation=45, ha="right")
    ax.set_ylabel("gain over baseline (metric points)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_map(library: Library, path: Path) -> Path:
    """PCA of each task's TaskEmb and TextEmb vectors, side by side, coloured by task type."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, method in zip(axes, ("taskemb", "textemb"), strict=True):
        names = sorted(n for n, e in library.embeddings.items() if method in e)
        ax.set_title(f"{method} (PCA)")
        if len(names) < 3:
            ax.text(0.5, 0.5, "fewer than 3 embedded tasks", ha="center", transform=ax.transAxes)
            continue
        points = _pca(np.vstack([_flat(library.embeddings[n][method]) for n in names]))
        types = sorted({library.specs[n].type.value for n in names})
        colours = plt.get_cmap("tab10")
        for name, (x, y) in zip(names, points, strict=True):
            colour = colours(types.index(library.specs[name].type.value))
            ax.scatter(x, y, color=colour, s=18)
            ax.annotate(name, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        for t in types:
            ax.scatter([], [], color=colours(types.index(t)), label=t)
        ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def _flat(embedding) -> np.ndarray:
    """One vector: components L2-normalised and concatenated in a fixed order."""
    parts = []
    for name in sorted(embedding.components):
        vector = np.asarray(embedding.components[name], dtype=float)
        norm = np.linalg.norm(vector)
        parts.append(vector / norm if norm > 0 else vector)
    return np.concatenate(parts)


def _pca(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # rows of vt: principal axes
    return centred @ vt[:2].T  # (tasks, 2)


def _coverage(rows, sweep: dict | None) -> str:
    measured = outcomes(rows)
    pairs = sum(len(m) for m in measured.values())
    sources = {s for m in measured.values() for s in m}
    seeds = {t: sorted({r.seed for r in rows if r.target == t}) for t in measured}
    text = (
        f"{len(rows)} transfer runs: {len(measured)} targets, {len(sources)} sources, {pairs} "
        f"(source, target) pairs, {_seed_groups(seeds)}."
    )
    # Each target's grid spans the seeds measured on it: some targets may get more than others.
    wanted = {t: len(sources - {t}) * len(seeds[t]) for t in measured}
    grid = sum(wanted.values())
    if grid:
        text += (
            f" Of the grid those targets × sources × seeds span, {100 * len(rows) / grid:.0f}% "
            "is measured."
        )
    runs = {t: sum(r.target == t for r in rows) for t in measured}
    partial = [f"{t} ({runs[t]} of {wanted[t]})" for t in sorted(measured) if runs[t] < wanted[t]]
    if partial:
        text += (
            f" Not yet whole: {', '.join(partial)} runs; their rankings cover only the sources "
            "measured on them."
        )
    flat = [t for t, m in sorted(measured.items()) if _mostly_unmoved(m.values())]
    if flat:
        text += (
            f"\n\nOn {', '.join(flat)} most sources leave the target's score exactly where the "
            "baseline has it (mean gain 0.0): their rankings hinge on a few sources, and ties "
            "make ρ and Regret there coarse."
        )
    if sweep:
        text += (
            f"\n\nSweep settings (`.sweep.json`):\n\n```json\n{json.dumps(sweep, indent=1)}\n```"
        )
    return "## The matrix\n\n" + text


def _seed_groups(seeds: dict[str, list[int]]) -> str:
    """ "seeds 0, 1, 2", or per group of targets where they differ."""
    groups: dict[tuple[int, ...], list[str]] = {}
    for target, measured in sorted(seeds.items()):
        groups.setdefault(tuple(measured), []).append(target)
    if len(groups) == 1:
        return "seeds " + ", ".join(map(str, next(iter(groups))))
    return "; ".join(
        f"seeds {', '.join(map(str, group))} on {', '.join(targets)}"
        for group, targets in sorted(groups.items(), key=lambda kv: (len(kv[0]), kv[1]))
    )


def _mostly_unmoved(outcomes_of_target) -> bool:
    gains = [o.gain for o in outcomes_of_target]
    return sum(abs(g) < 1e-9 for g in gains) > len(gains) / 2


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path
