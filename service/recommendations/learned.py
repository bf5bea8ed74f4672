"""The learned ranker, served: FAISS finds the candidates, measured transfers order them.

Evidence belongs to the model that was fine-tuned (the *transfer model*): a request ranks with
that model's evidence sets (``service.evidence``: the named ones, or its defaults) plus the
finished single-source transfer runs of the requesting owner (and those an admin shared) that
fine-tuned the same model. The ranker file (``taskrec evaluate --save-ranker``) supplies the
ranker's settings and its saved evaluation, not evidence. With no evidence, or too little to fit,
the caller ranks by an evidence-free method and says so.

Tasks are keyed as evidence keys them: a library task by its name (the sweep's names), any other
task by ``task:<id>`` so an owner's task can never pose as a library task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.embeddings.repository import to_array
from service.models import Embedding, Task, TransferResult, TransferRun


@dataclass(frozen=True)
class LearnedPick:
    """One candidate's place: the blended score and what it is made of."""

    task_id: int
    score: float
    evidence: dict[str, float]  # learned.model / learned.prior / learned.weight percentiles


@dataclass(frozen=True)
class Evidence:
    """The service's own measured transfers, and the tasks they name."""

    rows: list  # workers.selection.results.TransferRow
    task_ids: dict[str, int]  # ranker key -> task id


def evidence_stamp(session: Session, owner_id: int | None) -> tuple:
    """Changes whenever an evidence set is added, removed or made default, or a transfer run
    visible to ``owner_id`` as evidence finishes (cache keys)."""
    from service.evidence.repository import stamp

    visible = TransferRun.owner_id == owner_id
    # The gains' sum too: a result replaced in place keeps the count, and SQLite may give it
    # the id it had
    query = (
        select(
            func.count(TransferResult.id),
            func.max(TransferResult.id),
            func.sum(TransferResult.gain_mean),
        )
        .join(TransferRun, TransferResult.run_id == TransferRun.id)
        .where(visible | TransferRun.shared.is_(True))
    )
    count, last, gains = session.execute(query).one()
    return (count, last, gains, stamp(session))


@dataclass(frozen=True)
class FittedRanker:
    """The learned ranker fitted on the evidence, and the tasks that evidence names."""

    ranker: object  # workers.selection.rankers.LearnedRanker (torch-free, imported lazily)
    task_ids: dict[str, int]  # ranker key -> task id
    own_rows: int  # of the rows, how many came from the owner's (or shared) transfer runs
    # (target key, source key) -> (mean gain, seeds) of every measured pair, single-source
    # targets included: shown beside a ranking of that target, never used to reorder it
    measured: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)


def fit_ranker(
    session: Session,
    encoder_id: str,
    ranker_file: Path,
    set_rows: list,
    own: Evidence,
) -> FittedRanker:
    """Fit on the evidence sets' rows plus the owner's runs; reads only the tasks they name.
    The ranker's settings are the ranker file's (the defaults without one)."""
    from workers.selection.rankers import LearnedRanker
    from workers.selection.results import outcomes

    names = {name for row in set_rows for name in (row.source, row.target)}
    keys = {**own.task_ids, **_library_keys(session, names)}
    library = _library(session, keys, encoder_id)
    known = set(library.specs)
    rows = [r for r in [*set_rows, *own.rows] if r.source in known and r.target in known]
    ranker = LearnedRanker(library, _saved_config(ranker_file)).fit(rows)
    kept = set(rows)
    measured = {
        (target, source): (outcome.gain, outcome.seeds)
        for target, sources in outcomes(rows).items()
        for source, outcome in sources.items()
    }
    return FittedRanker(ranker, keys, sum(1 for r in own.rows if r in kept), measured)


def _saved_config(ranker_file: Path):
    from workers.selection.rankers import LearnedConfig, LearnedRanker

    if not ranker_file.is_file():
        return LearnedConfig()
    return LearnedRanker.load_evidence(ranker_file).config


def rank_learned(
    session: Session,
    target: Task,
    candidates: list[int],
    encoder_id: str,
    fitted: FittedRanker,
) -> tuple[list[LearnedPick], str]:
    """``candidates`` (task ids) best first by the fitted ranker; and a note on its evidence."""
    request_keys = _keys(session, [target.id, *candidates])
    request = _library(session, request_keys, encoder_id)
    ranker = fitted.ranker.with_library(fitted.ranker.library.merged(request))
    keys = {**fitted.task_ids, **request_keys}
    names = {task_id: key for key, task_id in keys.items()}
    target_key = names[target.id]
    candidate_keys = [names[i] for i in candidates if i != target.id]
    scores = ranker.scores(target_key, candidate_keys)
    picks = [
        LearnedPick(
            task_id=keys[c],
            score=s["score"],
            evidence={
                **{f"learned.{k}": s[k] for k in ("model", "prior", "weight") if k in s},
                # how many measured targets the source's donor record rests on
                **({"learned.donor_targets": s["evidence"]} if "evidence" in s else {}),
                **_measured(fitted.measured.get((target_key, c))),
            },
        )
        for c, s in scores.items()
    ]
    picks.sort(key=lambda p: (-p.score, names[p.task_id]))
    return picks, _note(ranker)


def _measured(found: tuple[float, int] | None) -> dict[str, float]:
    """A pair measured on this very target: its mean gain and seeds, for the reader."""
    if found is None:
        return {}
    gain, seeds = found
    return {"measured.gain": gain, "measured.seeds": float(seeds)}


def _note(ranker) -> str:
    measured = len(ranker.evidence)
    pairs = sum(len(m) for m in ranker.evidence.values())
    if ranker.model is None:
        return (
            f"learned ranker: {measured} measured targets ({pairs} pairs), too few to fit; "
            f"ranked by its prior ({ranker.prior})"
        )
    config = ranker.config
    return (
        f"learned ranker: fitted on {measured} measured targets ({pairs} pairs), blended with "
        f"{ranker.prior} where a source has little evidence (model weight n / (n + "
        f"{config.shrinkage:g}) for a source measured on n targets of the target's type, those "
        f"of other types counting {config.other_type_share:g} each)"
    )


def own_evidence(
    session: Session, owner_id: int | None, transfer_model: str, default_model: str
) -> Evidence:
    """Finished single-source sequential runs of ``owner_id`` (or shared by an admin) that
    fine-tuned ``transfer_model``, as ``TransferRow``s, one per seed. A run that named no model
    fine-tuned ``default_model`` (the service's)."""
    from workers.selection.evidence import same_transfer_model, transfer_model_name
    from workers.selection.results import TransferRow

    query = (
        select(TransferRun, TransferResult)
        .join(TransferResult, TransferResult.run_id == TransferRun.id)
        .where(
            TransferRun.strategy == "sequential",
            TransferRun.target_task_id.is_not(None),
            (TransferRun.owner_id == owner_id) | TransferRun.shared.is_(True),
        )
    )
    runs = [
        (run, result)
        for run, result in session.execute(query)
        if len(run.sources) == 1
        and run.sources[0].get("id") is not None
        and same_transfer_model(
            transfer_model, transfer_model_name(run.config.get("model") or default_model)
        )
    ]
    ids = {i for run, _ in runs for i in (run.target_task_id, run.sources[0]["id"])}
    task_ids = _keys(session, list(ids))  # one query for every run's tasks
    by_id = {task_id: key for key, task_id in task_ids.items()}
    rows = []
    for run, result in runs:
        target, source = by_id.get(run.target_task_id), by_id.get(run.sources[0]["id"])
        if target is None or source is None:
            continue  # a task of the run was deleted since
        per_seed = result.per_seed
        for seed, score, baseline, gain in zip(
            run.seeds, per_seed["transfer"], per_seed["baseline"], per_seed["gain"], strict=False
        ):
            row = TransferRow(source, target, int(seed), score, baseline, gain, result.metric)
            rows.append(row)
    return Evidence(rows, task_ids)


def _library_keys(session: Session, names: set[str]) -> dict[str, int]:
    if not names:
        return {}
    query = select(Task.name, Task.id).where(Task.is_library.is_(True), Task.name.in_(names))
    return dict(session.execute(query).all())


def _keys(session: Session, ids: list[int]) -> dict[str, int]:
    """Ranker key -> task id for the tasks that exist."""
    query = select(Task.id, Task.name, Task.is_library).where(Task.id.in_(set(ids)))
    return {
        (name if is_library else f"task:{task_id}"): task_id
        for task_id, name, is_library in session.execute(query)
    }


def _library(session: Session, keys: dict[str, int], encoder_id: str):
    """Specs, training sizes and ``encoder_id`` embeddings of the tasks in ``keys``."""
    from workers.selection.rankers import Library

    by_id = {task_id: key for key, task_id in keys.items()}
    return Library(
        specs=_specs(session, by_id),
        sizes=_sizes(session, by_id),
        embeddings=_embeddings(session, by_id, encoder_id),
    )


def _specs(session: Session, by_id: dict[int, str]):
    from workers.data.schema import Metric, TaskSpec, TaskType

    specs = {}
    for task in session.scalars(select(Task).where(Task.id.in_(by_id))):
        specs[by_id[task.id]] = TaskSpec(
            name=by_id[task.id],
            type=TaskType(task.type),
            metric=Metric(task.metric),
            labels=tuple(str(label) for label in task.labels or ()),
            family=(task.manifest or {}).get("family"),
        )
    return specs


def _sizes(session: Session, by_id: dict[int, str]) -> dict[str, int]:
    query = select(Task.id, Task.counts).where(Task.id.in_(by_id))
    return {by_id[i]: int((counts or {}).get("train", 0)) for i, counts in session.execute(query)}


def _embeddings(session: Session, by_id: dict[int, str], encoder_id: str):
    from workers.encoder import EncoderRef
    from workers.similarity import TaskEmbedding

    query = (
        select(Embedding)
        .where(Embedding.task_id.in_(by_id), Embedding.encoder_id == encoder_id)
        .order_by(Embedding.id)
    )
    found: dict[str, dict[str, TaskEmbedding]] = {}
    for row in session.scalars(query):
        methods = found.setdefault(by_id[row.task_id], {})
        if row.method not in methods:
            ref = EncoderRef(row.encoder_name, row.model_revision, "")
            methods[row.method] = TaskEmbedding(
                by_id[row.task_id], row.method, ref, {}, row.num_examples, {}
            )
        methods[row.method].components[row.component] = to_array(row.vector)
    return found
