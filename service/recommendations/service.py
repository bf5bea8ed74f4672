"""Recommendations: FAISS nearest neighbours per component, fused with the engine's RRF.

Each component's index returns its ``recommend_candidates`` nearest library tasks; the rankings
are fused with ``workers.similarity.reciprocal_rank_fusion`` exactly as ``rank_library`` fuses
full rankings (per method over components, then over methods for ``fused``). With a library no
larger than the candidate depth the result equals ``rank_library``'s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial

import numpy as np
from sqlalchemy import Row
from sqlalchemy.orm import Session

from service.context import AppContext
from service.db import on_commit
from service.embeddings import repository as embeddings
from service.evidence import service as evidence_service
from service.evidence.schemas import EvidenceUsed
from service.models import Task
from service.recommendations import repository
from service.recommendations.exceptions import EmbeddingsNotReady
from service.recommendations.index import IndexDelta, IndexKey, Snapshot, normalised
from service.recommendations.learned import (
    evidence_stamp,
    fit_ranker,
    own_evidence,
    rank_learned,
)
from service.recommendations.methods import (
    best_evidence_free,
    best_without_taskemb,
    method_record,
)
from service.recommendations.schemas import LibraryCoverage, RankedTask, Recommendations
from service.settings import Settings


def library_changed(
    session: Session,
    context: AppContext,
    task_id: int,
    *,
    removed: bool = False,
    encoder_ids: list[str] | None = None,
) -> None:
    """Record that a task joined, left or changed in the library; indexes follow on commit."""
    task = session.get(Task, task_id)
    for encoder_id in encoder_ids or embeddings.encoders_of(session, task_id):
        old, new = repository.bump(session, encoder_id)
        delta = IndexDelta(encoder_id, old, new, remove={task_id})
        if not removed and task is not None:
            for (method, component), vector in embeddings.task_vectors(
                session, task_id, encoder_id
            ).items():
                delta.add.setdefault((method, component), {})[task_id] = vector
            delta.tasks[task_id] = (task.name, task.type)
        on_commit(session, partial(context.indexes.apply, delta))


def recommend(
    session: Session,
    context: AppContext,
    target: Task,
    *,
    k: int,
    method: str,
    task_type: str | None = None,
    model: str | None = None,
    owner_id: int | None = None,
    transfer_model: str | None = None,
    evidence_sets: tuple[str, ...] = (),
) -> Recommendations:
    """The ``k`` nearest library tasks to ``target`` by ``method``; 409 until it is embedded.

    ``learned`` ranks with the measured transfers of ``transfer_model`` (the setting's by
    default): the named ``evidence_sets`` or that model's defaults, plus the finished transfers
    of ``owner_id`` (and shared ones). Without enough of them it ranks by the best evidence-free
    method and says why. Answers are kept in ``context.recommendations`` under the target's
    newest embedding, the library version, the query and the evidence's stamp, so a repeated
    question skips the search.
    """
    from workers.similarity import FUSED_METHODS

    settings = context.settings
    model = model or settings.model
    transfer_model = transfer_model or settings.default_transfer_model
    label_note = None
    if not target.labelled:
        label_note, method = _unlabelled_method(session, settings, target, model, method, task_type)
    chosen = None
    if method == "learned":  # 404/422 for a bad evidence_set= before any work
        chosen = evidence_service.choose(session, transfer_model, list(evidence_sets))
    methods = FUSED_METHODS if method in ("fused", "learned", "sized") else (method,)
    encoder_id, vectors, revision = _target_vectors(session, target, model, methods)
    version = repository.version(session, encoder_id)
    key = (target.id, revision, encoder_id, version, k, method, task_type, model)
    stamp: tuple = ()
    if chosen is not None:  # a new set, default or finished run changes the answer
        stamp = (owner_id, chosen.transfer_model, tuple(s.id for s in chosen.sets))
        stamp += evidence_stamp(session, owner_id)
    key += stamp
    cached = context.recommendations.get(key)
    if cached is not None:
        return _with_record(cached, settings, task_type, transfer_model)
    twins = repository.same_data(session, target)
    excluded = {target.id, *(task_id for task_id, _ in twins)}
    ranker = _Ranker(session, context, excluded, encoder_id, version, task_type, methods)
    if chosen is not None:
        learned = _Learned(chosen, owner_id, (encoder_id, version, *stamp))
        result = _rank_learned(session, context, ranker, target, vectors, learned, k=k, model=model)
    else:
        result = _rank(session, ranker, target, vectors, k=k, method=method, model=model)
    if label_note is not None:
        result = result.model_copy(
            update={"note": "; ".join(filter(None, (label_note, result.note)))}
        )
    if twins:
        left_out = (
            f"left out {', '.join(name for _, name in twins)}: the same rows as this task "
            "(transfer from them would train the target on itself)"
        )
        result = result.model_copy(
            update={"note": "; ".join(filter(None, (result.note, left_out)))}
        )
    context.recommendations.put(key, result)
    return _with_record(result, settings, task_type, transfer_model)


def _unlabelled_method(
    session: Session,
    settings: Settings,
    target: Task,
    model: str,
    method: str,
    task_type: str | None,
) -> tuple[str | None, str]:
    """How an unlabelled target ranks, and the words that say so: with its TaskEmb where a
    label donor's trained head labelled it, else by the best method that reads the text alone."""
    from workers.selection.methods import reads

    if "taskemb" not in reads(method):
        return None, method
    donor = embeddings.label_donor_of(session, target.id, model)
    if donor is not None:
        note = (
            f"{target.name} has no labels: its TaskEmb samples them from a head trained on "
            f"{donor}, the nearest labelled library task of its label space"
        )
        return note, method
    label_free = best_without_taskemb(settings, task_type)
    note = (
        f"{target.name} has no labels and no labelled library task shares its label space, so "
        f"no TaskEmb (its Fisher needs labels): ranked by {label_free}, which reads the text alone"
    )
    return note, label_free


def _with_record(result: Recommendations, settings, task_type: str | None, transfer_model: str):
    # Added on the way out, not cached: a new ranker file brings a new record at once. The
    # record measured the ranker file's transfer model: a question about another model (by any
    # method) gets none.
    record = method_record(settings, result.method, task_type, transfer_model)
    return result.model_copy(update={"evaluation": record}) if record else result


@dataclass(frozen=True)
class _Learned:
    chosen: evidence_service.Chosen
    owner_id: int | None
    fit_key: tuple  # encoder, library version, evidence stamp


def _rank_learned(
    session, context, ranker, target, vectors, learned: _Learned, *, k, model
) -> Recommendations:
    """The fused ranking's top ``learned_candidates``, re-ordered by the learned ranker; each
    task's evidence holds the ranker's parts next to the similarities. The fitted ranker is kept
    under ``fit_key``: requests refit only after new evidence. Too little evidence to fit: the
    best evidence-free method ranks, and the answer says so."""
    settings = context.settings
    fitted = context.learned_fits.get(learned.fit_key)
    if fitted is None:
        chosen = learned.chosen
        own = own_evidence(session, learned.owner_id, chosen.transfer_model, settings.model)
        rows = evidence_service.rows(session, chosen)
        fitted = fit_ranker(session, ranker.encoder_id, settings.ranker_file, rows, own)
        context.learned_fits.put(learned.fit_key, fitted)
    used = _evidence_used(learned.chosen, fitted)
    if not used.used:
        fallback, why = best_evidence_free(settings, ranker.task_type, used.transfer_model)
        result = _rank_by(session, context, ranker, target, fallback, k=k, model=model)
        note = f"ranked by {fallback}, {why}: {used.reason}"
        notes = "; ".join(n for n in (result.note, note) if n)
        update = {"note": notes, "transfer_model": used.transfer_model, "evidence": used}
        return result.model_copy(update=update)
    fused = _rank(
        session, ranker, target, vectors, k=settings.learned_candidates, method="fused", model=model
    )
    by_id = {r.task_id: r for r in fused.ranking}
    picks, note = rank_learned(session, target, list(by_id), ranker.encoder_id, fitted)
    ranking = [
        by_id[p.task_id].model_copy(
            update={"score": p.score, "components": {**p.evidence, **by_id[p.task_id].components}}
        )
        for p in picks[:k]
    ]
    note = f"{note}; evidence of {used.transfer_model}: {_evidence_words(used)}"
    update = {
        "method": "learned",
        "k": k,
        "ranking": ranking,
        "note": "; ".join(n for n in (fused.note, note) if n),
        "transfer_model": used.transfer_model,
        "evidence": used,
    }
    return fused.model_copy(update=update)


def _rank_by(session, context, ranker: _Ranker, target, method: str, *, k, model):
    """``target`` ranked by an evidence-free ``method`` (its own vectors and indexes)."""
    from workers.similarity import FUSED_METHODS

    methods = FUSED_METHODS if method in ("fused", "sized") else (method,)
    encoder_id, vectors, _ = _target_vectors(session, target, model, methods)
    by_method = _Ranker(
        session, context, ranker.excluded, encoder_id, ranker.version, ranker.task_type, methods
    )
    return _rank(session, by_method, target, vectors, k=k, method=method, model=model)


def _evidence_used(chosen: evidence_service.Chosen, fitted) -> EvidenceUsed:
    ranker = fitted.ranker
    targets = len(ranker.evidence)
    pairs = sum(len(m) for m in ranker.evidence.values())
    reason = chosen.reason
    if ranker.model is None and reason is None:
        needed = ranker.config.min_targets
        reason = (
            f"{targets} measured target(s) of {chosen.transfer_model!r} ({pairs} pairs), too "
            f"few to fit the learned ranker (it needs {needed})"
        )
    return EvidenceUsed(
        transfer_model=chosen.transfer_model,
        sets=[s.name for s in chosen.sets],
        protocol=chosen.protocol,
        own_transfers=fitted.own_rows,
        targets=targets,
        pairs=pairs,
        used=ranker.model is not None,
        reason=None if ranker.model is not None else reason,
    )


def _evidence_words(used: EvidenceUsed) -> str:
    parts = [f"set(s) {', '.join(used.sets)}"] if used.sets else []
    if used.own_transfers:
        parts.append(f"{used.own_transfers} rows from your finished transfers")
    return " and ".join(parts) or "your finished transfers"


def _rank(session, ranker, target, vectors, *, k, method, model) -> Recommendations:
    from workers.selection.rankers import sized_scores  # the engine's rules
    from workers.similarity import reciprocal_rank_fusion

    methods = tuple(dict.fromkeys(m for m, _ in vectors))
    per_method = {m: ranker.rank_method(m, vectors, reciprocal_rank_fusion) for m in methods}
    if len(methods) == 1:
        scores, rrf = per_method[method], {}
    else:
        # Ties keep library order (task id), as rank_library keeps its library's order.
        scores = reciprocal_rank_fusion(
            [sorted(s, key=lambda n, s=s: (-s[n], n)) for s in per_method.values()]
        )
        rrf = per_method
    sizes = {}
    if method == "sized":  # over the FAISS candidates (all of a library of ≤ 1,000 tasks)
        sizes = _library_sizes(session, ranker)
        by_similarity = sorted(scores, key=lambda i: (-scores[i], ranker.task(i)[0]))
        scores = sized_scores(by_similarity, sizes)  # ties by name, as the engine breaks them
    order = _best(scores, k, ranker.task)
    ranking = [
        RankedTask(
            task=ranker.task(i)[0],
            task_id=i,
            type=ranker.task(i)[1],
            score=scores[i],
            components=ranker.evidence(i, vectors, rrf)
            | ({"size.train_rows": float(sizes.get(i, 0))} if sizes else {}),
        )
        for i in order
    ]
    coverage = _coverage(session, ranker, ranker.task_type)
    return Recommendations(
        task_id=target.id,
        task=target.name,
        method=method,
        model=model,
        encoder_id=ranker.encoder_id,
        k=k,
        type=ranker.task_type,
        library=coverage,
        ranking=ranking,
        note=_note(coverage),
    )


def _library_sizes(session, ranker: _Ranker) -> dict[int, int]:
    """Every library task's training rows, read once per library version (and cache period)."""
    key = (ranker.encoder_id, ranker.version)
    sizes = ranker.context.library_sizes.get(key)
    if sizes is None:
        sizes = repository.library_train_sizes(session)
        ranker.context.library_sizes.put(key, sizes)
    return sizes


class _Ranker:
    """Searches one component index after another and keeps each one's hits.

    Only the ``k`` tasks shown need evidence, so hits are kept as they come (``id -> cosine``
    per component) and read per shown task at the end: the work per request grows with the
    candidate depth, never with the library.
    """

    def __init__(self, session, context, excluded, encoder_id, version, task_type, methods) -> None:
        self.session, self.context = session, context
        self.excluded, self.encoder_id, self.task_type = excluded, encoder_id, task_type
        self.prefixed = len(methods) > 1  # evidence keys as rank_library writes them
        self.version = version
        self.hits: dict[tuple[str, str], dict[int, float]] = {}  # (method, component) -> hits
        self.snapshots: dict[tuple[str, str], Snapshot] = {}

    def rank_method(self, method: str, vectors, fuse) -> dict[int, float]:
        components = [c for m, c in vectors if m == method]
        rankings = []
        for component in components:
            snapshot = self._snapshot((self.encoder_id, method, component), vectors)
            allowed = None
            if self.task_type:
                allowed = snapshot.by_type.get(self.task_type, np.empty(0, dtype="int64"))
            settings = self.context.settings
            hits = dict(
                snapshot.search(
                    vectors[(method, component)],
                    settings.recommend_candidates,
                    allowed=allowed,
                    exclude=self.excluded,
                    threads=settings.search_threads,
                )
            )
            self.hits[(method, component)] = hits
            rankings.append(list(hits))  # best first: dicts keep FAISS's order
        return fuse(rankings)

    def task(self, task_id: int) -> tuple[str, str]:
        """(name, type) of a hit, looked up only for the tasks a ranking shows."""
        for snapshot in self.snapshots.values():
            found = snapshot.tasks.get(task_id)
            if found is not None:
                return found
        raise KeyError(task_id)

    def evidence(self, task_id: int, vectors, rrf: dict[str, dict[int, float]]) -> dict[str, float]:
        """Per component the cosine (FAISS's, or exact where the task was not a candidate),
        then per method its RRF score when methods are fused; keys in rank_library's order."""
        evidence: dict[str, float] = {}
        missing = []
        for key in vectors:  # (method, component), in method then component order
            score = self.hits[key].get(task_id)
            if score is None:
                missing.append(key)
            else:
                evidence[self._label(*key)] = score
        evidence.update({f"{m}.rrf": scores.get(task_id, 0.0) for m, scores in rrf.items()})
        for method, component in missing:
            stored = self.snapshots[(method, component)].vector(task_id)
            if stored is not None:
                query = normalised(vectors[(method, component)].reshape(1, -1))[0]
                evidence[self._label(method, component)] = float(np.dot(query, stored))
        return evidence

    def _label(self, method: str, component: str) -> str:
        return f"{method}.{component}" if self.prefixed else component

    def _snapshot(self, key: IndexKey, vectors) -> Snapshot:
        dim = int(vectors[key[1:]].shape[0])

        def load():
            ids, rows, tasks = embeddings.library_vectors(self.session, *key)
            return ids, rows, tasks, dim

        snapshot = self.context.indexes.snapshot(key, self.version, load)
        self.snapshots[key[1:]] = snapshot
        return snapshot


def _best(scores: dict[int, float], k: int, task) -> list[int]:
    """The ``k`` best ids, ties by task name, without sorting every candidate in Python."""
    if len(scores) > k:
        values = np.fromiter(scores.values(), dtype="float64", count=len(scores))
        cutoff = np.partition(values, len(values) - k)[len(values) - k]  # the k-th best score
        ids = np.fromiter(scores.keys(), dtype="int64", count=len(scores))
        scores = {i: scores[i] for i in ids[values >= cutoff].tolist()}  # ties at the cut stay
    return sorted(scores, key=lambda i: (-scores[i], task(i)[0]))[:k]


def _target_vectors(
    session: Session, target: Task, model: str, methods: tuple[str, ...]
) -> tuple[str, dict[tuple[str, str], np.ndarray], str]:
    """The encoder, the vectors by (method, component), and a digest of those vectors.

    The digest, not a row id, names the revision: SQLite reuses the ids of deleted rows.
    """
    rows = embeddings.vector_rows(session, target.id, model)
    newest: dict[str, Row] = {}
    for row in rows:  # ordered by id: later rows (newer encoders) win
        newest[row.method] = row
    encoder_ids = {newest[m].encoder_id for m in methods if m in newest}
    if len(encoder_ids) != 1 or any(m not in newest for m in methods):
        raise EmbeddingsNotReady(_not_ready_message(session, target, model, methods))
    encoder_id = encoder_ids.pop()
    vectors = {
        (row.method, row.component): embeddings.to_array(row.vector)
        for row in rows
        if row.encoder_id == encoder_id and row.method in methods
    }
    ordered = {key: vectors[key] for m in methods for key in vectors if key[0] == m}
    digest = hashlib.blake2b(digest_size=16)
    for (method, component), vector in ordered.items():
        digest.update(f"{method}.{component}".encode())
        digest.update(vector.tobytes())
    return encoder_id, ordered, digest.hexdigest()


def _not_ready_message(session: Session, target: Task, model: str, methods) -> str:
    job = embeddings.latest_jobs(session, [target.id]).get(target.id)
    wanted = " and ".join(methods)
    base = f"task {target.id} has no {wanted} embeddings by {model!r} yet"
    if job is None:
        return f"{base}; request them with POST /v1/tasks/{target.id}/embeddings"
    if job.state in ("queued", "running"):
        return f"{base}: job {job.id} is {job.state} ({100 * job.progress:.0f}%); retry when done"
    return f"{base}: job {job.id} {job.state} ({job.error or 'no error recorded'})"


def _coverage(session: Session, ranker: _Ranker, task_type: str | None) -> LibraryCoverage:
    """Library tasks the ranking could hold (the excluded ones not counted), and how many are
    ready: embedded in every index the method searched."""
    total = repository.library_total(session, task_type)
    total -= repository.library_count_of(session, ranker.excluded, task_type)
    sizes = [s.count(task_type, exclude=ranker.excluded) for s in ranker.snapshots.values()]
    ready = min(sizes) if sizes else 0
    return LibraryCoverage(total=max(0, total), ready=ready, complete=ready >= total)


def _note(coverage: LibraryCoverage) -> str | None:
    if coverage.complete:
        return None
    return (
        f"ranked against {coverage.ready} of {coverage.total} library tasks; the rest are "
        "still being embedded"
    )
