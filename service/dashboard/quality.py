"""The selection-quality page: the ranker file's saved evaluation, read live, with the
project's goals checked against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from service.dashboard import charts
from service.evidence import service as evidence_service
from service.recommendations.methods import method_evidence
from service.recommendations.schemas import Methods
from service.settings import Settings

# The project's goals for the learned ranker, as workers/research/report.py checks them on the
# results page (the API never imports the research code; a test keeps the two equal)
CHALLENGERS = ("datasize", "semb", "taskemb")
REGRET_GOAL = 1.0  # Regret@3, in %
SCOPES = {"all": "all types", "within": "within the target's type"}


@dataclass(frozen=True)
class Goal:
    text: str
    met: bool
    detail: str


@dataclass
class Quality:
    methods: Methods
    metrics: list[str] = field(default_factory=list)  # columns: targets, rho, ndcg, regret@k
    goals: dict[str, list[Goal]] = field(default_factory=dict)  # per scope
    charts: dict[str, charts.Figure] = field(default_factory=dict)
    evidence_sets: list[str] = field(default_factory=list)


def quality(session: Session, settings: Settings) -> Quality:
    """Every method's record per scope from the ranker file, the goals, and the evidence sets
    of the transfer model it measured."""
    methods = method_evidence(settings)
    found = Quality(methods)
    if methods.evaluated_on is None:
        return found
    keys = dict.fromkeys(k for m in methods.methods for r in m.evaluation.values() for k in r)
    found.metrics = [k for k in ("targets", "rho", "ndcg") if k in keys]
    found.metrics += sorted((k for k in keys if k.startswith("regret@")), key=_k)
    for scope in SCOPES:
        records = {m.method: m.evaluation.get(scope) for m in methods.methods}
        records = {m: r for m, r in records.items() if r}
        if records:
            found.goals[scope] = goals(records)
    shown = [m for m in methods.methods if "all" in m.evaluation and ":" not in m.method]
    for metric, title, axis in (
        ("rho", "Rank of each target's best source, all types (lower is better)", "mean ρ"),
        ("regret@3", "Gain lost by the top 3, all types (lower is better)", "Regret@3 (%)"),
    ):
        values = [m.evaluation["all"].get(metric) for m in shown]
        names = [m.method for m in shown]
        found.charts[metric] = charts.metric_bars(names, values, title, axis, methods.best)
    if methods.evaluated_for:
        chosen = evidence_service.choose(session, methods.evaluated_for, [])
        found.evidence_sets = [s.name for s in chosen.sets]
    return found


def _k(metric: str) -> int:
    return int(metric.split("@", 1)[1]) if "@" in metric else 0


def goals(records: dict[str, dict[str, Any]]) -> list[Goal]:
    """Learned beats DataSize, SEmb and TaskEmb on mean ρ and Regret@3; its Regret@3 ≤ 1%."""
    learned = records.get("learned")
    if learned is None:
        return [Goal("the learned ranker was evaluated", False, "it is not in the ranker file")]
    out = []
    for metric, label in (("rho", "ρ"), ("regret@3", "Regret@3")):
        for rival in CHALLENGERS:
            mine, theirs = learned.get(metric), (records.get(rival) or {}).get(metric)
            if mine is None or theirs is None:
                continue
            out.append(
                Goal(
                    f"learned beats {rival} on {label}",
                    mine < theirs,
                    f"{mine:.2f} vs {theirs:.2f}",
                )
            )
    regret = learned.get("regret@3")
    if regret is not None:
        out.append(
            Goal(f"learned Regret@3 ≤ {REGRET_GOAL:g}%", regret <= REGRET_GOAL, f"{regret:.2f}%")
        )
    return out
