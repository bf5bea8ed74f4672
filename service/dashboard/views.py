"""What each page shows, assembled from the domain services (their rules, their queries)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.context import AppContext
from service.dashboard import charts
from service.dashboard.dependencies import DashboardState
from service.errors import ServiceError
from service.evidence import repository as evidence_repository
from service.evidence import service as evidence_service
from service.jobs import service as jobs
from service.jobs.schemas import JobRead
from service.models import Owner, Task
from service.recommendations import service as recommendations
from service.recommendations.methods import resolve_method
from service.recommendations.schemas import Recommendations
from service.settings import Settings
from service.tasks import repository as task_repository
from service.tasks import service as tasks
from service.tasks.schemas import TaskRead
from service.tasks.storage import StoredTask, load_task_data
from service.transfers import service as transfers
from service.transfers.schemas import TransferRead
from workers.data.validation import TaskValidationError

PAGE_SIZE = 25
FITTED = ("learned.", "measured.", "size.")  # evidence keys that are not similarities


@dataclass(frozen=True)
class Pager:
    """Where a list page is: ``page`` is 1-based."""

    page: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))


def _page(find: Callable, read: Callable, page: int, **filters: Any) -> tuple[list, Pager]:
    """Page ``page`` of a domain's listing (``find``: its ``page`` service), read by ``read``."""
    items, total = find(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, **filters)
    return read(items), Pager(page, PAGE_SIZE, total)


def task_page(
    session: Session, settings: Settings, owner: Owner, page: int, library: bool | None
) -> tuple[list[TaskRead], Pager]:
    """One page of the tasks the owner may see (the API's listing)."""
    find = partial(tasks.page, session, owner, type=None, status=None, library=library)
    return _page(find, partial(tasks.read_models, session, settings), page)


# --- a task's statistics ---------------------------------------------------------------------


def label_chart(task: TaskRead) -> charts.Figure | None:
    """The training labels' distribution as bars (classification, tagging, choices, QA)."""
    distribution = task.label_distribution
    if not distribution or task.type == "regression":
        return None
    labels = sorted(distribution, key=lambda k: -distribution[k])
    values = [distribution[k] for k in labels]
    return charts.bars(
        labels, values, "", "training rows" if task.type != "sequence_labeling" else "tokens"
    )


def words(example: Any) -> int:
    """Whitespace words an example gives the encoder, over all its text fields."""
    tokens = getattr(example, "tokens", None)
    if tokens is not None:
        return len(tokens)
    parts = [getattr(example, f, None) for f in ("text", "text_pair", "context", "question")]
    parts += list(getattr(example, "choices", ()) or ())
    return sum(len(p.split()) for p in parts if p)


def length_chart(state: DashboardState, session: Session, settings: Settings, task: Task):
    """A histogram of the training rows' lengths in words; read once per task data (cached
    by its content hash), None when the data cannot be read."""
    key = (task.id, task.content_hash)
    cached = state.lengths.get(key)
    if cached is None:
        files = task_repository.files_of(session, [task.id])[task.id]
        try:
            data = load_task_data(StoredTask.of(task, files), settings)
        except (OSError, TaskValidationError):  # a folder moved or changed: show the rest
            return None
        lengths = np.array([words(ex) for ex in data.train], dtype=float)
        if lengths.size == 0:
            return None
        counts, edges = np.histogram(lengths, bins=_bins(lengths))
        cached = charts.histogram(edges.tolist(), counts.tolist(), "", "words per row")
        state.lengths.put(key, cached)
    return cached


def _bins(lengths: np.ndarray) -> np.ndarray | int:
    """Whole-word bins centred on each length when the range is short, else about √n bins."""
    low, high = int(lengths.min()), int(lengths.max())
    if high - low < 40:
        return np.arange(low, high + 2) - 0.5
    return min(40, max(5, int(np.sqrt(lengths.size))))


# --- recommendations -------------------------------------------------------------------------


@dataclass
class RankingView:
    """A task's recommendations, or why there are none yet."""

    result: Recommendations | None = None
    problem: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)  # TaskEmb components, in order


def ranking(
    session: Session, context: AppContext, task: Task, owner: Owner, k: int = 10
) -> RankingView:
    """The API's default recommendations of ``task`` for ``owner``, with per-row evidence."""
    try:
        result = recommendations.recommend(
            session,
            context,
            task,
            k=k,
            method=resolve_method(context.settings),
            owner_id=owner.id,
        )
    except ServiceError as error:  # not embedded yet, evidence mismatch: said on the page
        return RankingView(problem=error.message)
    return RankingView(result, rows=_rows(result), layers=_taskemb_layers(result))


def _taskemb_layers(result: Recommendations) -> list[str]:
    """The TaskEmb components in the evidence (unprefixed when TaskEmb ranked alone)."""
    keys = dict.fromkeys(k for r in result.ranking for k in r.components)
    if result.method == "taskemb":
        return list(keys)
    return [k for k in keys if k.startswith("taskemb.") and not k.endswith(".rrf")]


def _rows(result: Recommendations) -> list[dict[str, Any]]:
    """Each ranked task with its score as a share of the best (score bars) and, per TaskEmb
    component, its rank among the shown tasks: 1 means that layer puts it first."""
    top = max((r.score for r in result.ranking), default=0.0) or 1.0
    layers = _taskemb_layers(result)
    ranks: dict[str, dict[int, int]] = {}
    for layer in layers:
        order = sorted(result.ranking, key=lambda r, k=layer: -r.components.get(k, -math.inf))
        ranks[layer] = {r.task_id: i + 1 for i, r in enumerate(order)}
    agree_at = min(3, len(result.ranking))
    rows = []
    for place, r in enumerate(result.ranking, 1):
        layer_ranks = {layer: ranks[layer][r.task_id] for layer in layers}
        rows.append(
            {
                "place": place,
                "item": r,
                "share": max(0.0, r.score / top),
                "layer_ranks": layer_ranks,
                "agree": sum(1 for v in layer_ranks.values() if v <= agree_at),
                "agree_at": agree_at,
                "similarity": {k: v for k, v in r.components.items() if not k.startswith(FITTED)},
                # the learned ranker's parts and the pair's own measurement, if any
                "learned": {
                    k.replace(".", " ").replace("_", " "): v
                    for k, v in r.components.items()
                    if k.startswith(FITTED)
                },
            }
        )
    return rows


# --- jobs ------------------------------------------------------------------------------------


def job_page(session: Session, settings: Settings, owner: Owner, page: int) -> tuple[list, Pager]:
    """The owner's jobs, newest first, as the API shows them (queue place, ETA, error)."""
    find = partial(jobs.page, session, owner, state=None, kind=None, task_id=None)
    return _page(find, partial(jobs.read_models, session, settings), page)


def names_of(session: Session, owner: Owner, reads: list[JobRead]) -> dict[int, str]:
    """Task names of the jobs' tasks the owner may see."""
    names = {}
    for task_id in {j.task_id for j in reads if j.task_id}:
        found = task_repository.visible(session, owner, task_id)
        if found is not None:
            names[task_id] = found.name
    return names


# --- transfers -------------------------------------------------------------------------------


@dataclass
class TargetRuns:
    """One target's finished and running transfer runs, and its chart."""

    target: str
    target_id: int | None
    runs: list[TransferRead]
    chart: charts.Figure | None = None


TRANSFERS_PAGE_SIZE = 100  # runs per page of the transfers view, grouped by target there


def transfers_by_target(
    session: Session, owner: Owner, page: int = 1
) -> tuple[list[TargetRuns], Pager]:
    """One page of the owner's runs (newest first), grouped per target; each finished source
    against the baseline."""
    size = TRANSFERS_PAGE_SIZE
    items, total = transfers.page(session, owner, size, (page - 1) * size)
    grouped: dict[tuple[int | None, str], list[TransferRead]] = defaultdict(list)
    for run in transfers.read_models(session, items):
        grouped[(run.target.id, run.target.name)].append(run)
    out = []
    for (target_id, name), runs in grouped.items():
        done = [r for r in runs if r.result is not None]
        chart = None
        if done:
            # The line is the newest run's baseline; the table gives each run's own
            base = done[0].result.baseline
            chart = charts.against_baseline(
                [" + ".join(s.name for s in r.sources) for r in done],
                [r.result.transfer.mean for r in done],
                [r.result.transfer.std for r in done],
                (base.mean, base.std),
                done[0].result.metric,
            )
        out.append(TargetRuns(name, target_id, runs, chart))
    return out, Pager(page, size, total)


@dataclass
class EvidenceView:
    """An evidence set's source × target gains (heat map) and per-target strips."""

    sets: list[Any]
    chosen: Any | None
    heatmap: charts.Figure | None = None
    strips: charts.Figure | None = None


def evidence_view(session: Session, name: str | None) -> EvidenceView:
    """The named evidence set (default: the first default set), as gains per pair."""
    sets = evidence_repository.all_sets(session)
    chosen = next((s for s in sets if s.name == name), None) if name else None
    chosen = chosen or next((s for s in sets if s.is_default), sets[0] if sets else None)
    view = EvidenceView([evidence_service.read_model(s) for s in sets], chosen)
    if chosen is None:
        return view
    rows = evidence_service.rows(session, evidence_service.Chosen(chosen.transfer_model, [chosen]))
    gains: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        gains[(row.source, row.target)].append(row.gain)
    means = {pair: float(np.mean(values)) for pair, values in gains.items()}
    sources = sorted({s for s, _ in means})
    targets = sorted({t for _, t in means})
    grid = [[means.get((s, t)) for t in targets] for s in sources]
    view.heatmap = charts.heatmap(sources, targets, grid)
    view.strips = charts.gain_strips([(t, s, g) for (s, t), g in means.items()])
    return view


# --- library ---------------------------------------------------------------------------------


def library_ready(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Per embedding method, how many library tasks the service's encoder has embedded."""
    from service.dashboard import repository
    from service.embeddings import repository as embeddings
    from service.recommendations import repository as library

    total = library.library_total(session)
    out = []
    for method in ("taskemb", "textemb", "semb"):
        encoder_id = repository.library_encoder(session, settings.model, method)
        ready = embeddings.library_ready_count(session, encoder_id, method) if encoder_id else 0
        out.append({"method": method, "ready": ready, "total": total})
    return out
