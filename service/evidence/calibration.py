"""Library calibration: every library task measured as a donor on a fixed, diverse probe set of
targets, for one transfer model, so no library task lacks a donor record.

A calibration is one backfill job (below owners' jobs: ``JobPriority.BACKFILL`` on the
``backfill`` queue) running ``workers.sweep.run_sweep`` over the chosen sources and the probe
targets. Its CSV lives under ``<artifacts>/calibrations/<set>/``, so a retried or re-posted
calibration resumes where the last stopped; source checkpoints are the sweeps' shared ones. After
each source's runs the evidence set named for it is rewritten from the CSV (origin
``calibration``, the sweep's pinned settings as its protocol), so finished donors rank the next
request while the rest are still being measured. Its cost is estimated before it starts.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.context import AppContext
from service.encoders import allowed_encoder
from service.errors import Problem
from service.evidence import repository
from service.evidence import service as evidence
from service.evidence.exceptions import EvidenceInvalid
from service.evidence.schemas import (
    CalibrationCost,
    CalibrationCreate,
    CalibrationProtocol,
    CalibrationRead,
    Coverage,
)
from service.jobs.runner import RunningJob, limit_torch_threads
from service.jobs.service import queue_job
from service.models import EvidenceOrigin, EvidenceSet, JobKind, JobPriority, Owner, Task
from service.settings import Settings
from workers.selection.evidence import same_transfer_model, transfer_model_name
from workers.selection.results import TransferRow

MIN_PROBES, MIN_PROBE_TYPES = 4, 3


class CalibrationJobConfig(BaseModel):
    """The typed config a calibration job is stored with."""

    evidence_set: str
    model: str  # what the job loads and fine-tunes
    source_task_ids: list[int]
    probe_task_ids: list[int]
    seeds: list[int]
    protocol: CalibrationProtocol
    device: str | None = None


def start(
    session: Session, context: AppContext, admin: Owner, body: CalibrationCreate
) -> CalibrationRead:
    """Plan a calibration, estimate its cost and (unless a dry run) queue it as backfill."""
    settings = context.settings
    model = allowed_encoder(settings, body.transfer_model, "transfer_model")  # it is loaded
    name = body.evidence_set or _default_set_name(model)
    library = _library(session)
    probes = _probes(library, body.probes or settings.calibration_probes)
    sources = _sources(session, library, body.sources, model, probes)
    cost = estimate(settings, model, name, sources, probes, body)
    job_id = None
    if not body.dry_run and (cost.target_runs or cost.baselines):
        config = CalibrationJobConfig(
            evidence_set=name,
            model=model,
            source_task_ids=[t.id for t in sources],
            probe_task_ids=[t.id for t in probes],
            seeds=body.seeds,
            protocol=body.protocol,
            device=settings.device,
        )
        job = queue_job(
            session,
            context,
            admin.id,
            JobKind.CALIBRATE,
            config.model_dump(mode="json"),
            priority=JobPriority.BACKFILL,
        )
        job_id = job.id
    return CalibrationRead(
        evidence_set=name,
        transfer_model=transfer_model_name(model),
        probes=[t.name for t in probes],
        sources=[t.name for t in sources],
        seeds=body.seeds,
        cost=cost,
        job_id=job_id,
    )


def coverage(session: Session, transfer_model: str, set_names: Sequence[str] = ()) -> Coverage:
    """Library tasks measured as a source in the transfer model's default evidence sets, or in
    the sets ``set_names`` (all of the model, one protocol: ``evidence.choose``'s rules)."""
    chosen = evidence.choose(session, transfer_model, list(set_names))
    donors = _donors(session, chosen.sets)
    names = sorted(t.name for t in _library(session).values())
    return Coverage(
        transfer_model=chosen.transfer_model,
        sets=[s.name for s in chosen.sets],
        library=len(names),
        with_record=sum(n in donors for n in names),
        missing=[n for n in names if n not in donors],
    )


def coverage_by_protocol(session: Session, transfer_model: str) -> list[Coverage]:
    """The coverage of each protocol's sets of the transfer model, its defaults' group first: a
    calibration measured in another protocol than the defaults shows beside them."""
    groups = evidence.protocol_groups(session, transfer_model)
    return [coverage(session, transfer_model, [s.name for s in group]) for group in groups]


def estimate(
    settings: Settings,
    model: str,
    set_name: str,
    sources: list[Task],
    probes: list[Task],
    body: CalibrationCreate,
) -> CalibrationCost:
    """The sweep's cost from the tasks' sizes, less checkpoints and runs already made."""
    from workers.encoder import resolve_encoder
    from workers.selection.results import read_results
    from workers.sweep import TaskSize, estimate_cost, has_source_checkpoint

    config = sweep_config(body.protocol, body.seeds, settings.device)
    ref = resolve_encoder(model)
    size = lambda t: TaskSize(t.name, t.type, int((t.counts or {}).get("train", 0)))  # noqa: E731
    trained = frozenset(
        t.name
        for t in sources
        if has_source_checkpoint(settings.checkpoints_dir, t.name, t.content_hash, ref.id, config)
    )
    csv = _results_path(settings, set_name)
    done = frozenset(r.key for r in read_results(csv)) if csv.is_file() else frozenset()
    cost = estimate_cost(
        [size(t) for t in sources],
        [size(t) for t in probes],
        config,
        seconds_per_example=settings.sweep_seconds_per_example,
        seconds_per_run=settings.sweep_seconds_per_run,
        trained=trained,
        done=done,
        baselines_done=_baselines_done(csv),
    )
    return CalibrationCost(**cost.__dict__)


def sweep_config(protocol: CalibrationProtocol, seeds: list[int], device: str | None):
    from workers.sweep import SweepConfig

    return SweepConfig(
        regime="limited",
        source_n=protocol.source_rows,
        target_n=protocol.target_rows,
        eval_n=protocol.eval_rows,
        seeds=tuple(seeds),
        source_epochs=protocol.source_epochs,
        target_epochs=protocol.target_epochs,
        batch_size=protocol.batch_size,
        learning_rate=protocol.learning_rate,
        max_length=protocol.max_length,
        device=device,
    )


# --- the job ---------------------------------------------------------------------------------


def run(job: RunningJob) -> None:
    """Run (or resume) the calibration's sweep, rewriting its evidence set after each source."""
    from service.tasks.storage import load_task_data
    from service.transfers.jobs import stored_tasks
    from workers.encoder import resolve_encoder
    from workers.selection.results import read_results
    from workers.sweep import SweepPaths, run_sweep

    limit_torch_threads(job.settings)
    config = CalibrationJobConfig.model_validate(job.config)
    ids = list(dict.fromkeys([*config.source_task_ids, *config.probe_task_ids]))
    data = {s.id: load_task_data(s, job.settings) for s in stored_tasks(job, ids)}
    sources = [data[i] for i in config.source_task_ids]
    probes = [data[i] for i in config.probe_task_ids]
    ref = resolve_encoder(config.model)
    sweep = sweep_config(config.protocol, config.seeds, config.device)
    paths = SweepPaths(
        results=_results_path(job.settings, config.evidence_set),
        checkpoints=job.settings.checkpoints_dir,
    )
    protocol = {k: v for k, v in sweep.pinned(ref).items() if k != "encoder"}
    done = {r.key for r in read_results(paths.results)} if paths.results.is_file() else set()
    expected = {
        source.name: sum(
            (source.name, probe.name, seed) not in done
            for probe in probes
            for seed in config.seeds
            if probe.name != source.name
        )
        for source in sources
    }

    def publish() -> None:
        rows = read_results(paths.results) if paths.results.is_file() else []
        with job.session() as session:
            write_set(session, config.evidence_set, ref.id, protocol, rows)

    progress = _Progress(job, expected, publish)
    job.check()
    run_sweep(sources, probes, ref, paths, sweep, progress)
    publish()
    job.complete(lambda session: {"evidence_set": config.evidence_set, "sources": len(sources)})


class _Progress:
    """Sweep events to job progress; the evidence set is rewritten each time a source's runs
    are all in (``expected``: runs per source this call makes)."""

    def __init__(self, job: RunningJob, expected: dict[str, int], publish) -> None:
        self.job, self.expected, self.publish = job, expected, publish
        self.by_source: Counter[str] = Counter()
        self.finished = 0  # runs (and source stages) done: numbers the repeated stage names

    def __call__(self, event) -> None:
        if event.kind == "plan":  # progress weighed by each stage's training examples
            self.job.expect_stages(len(event.stage_weights), list(event.stage_weights))
        elif event.kind == "step":
            self.job.progress(f"{self.finished}:{event.label}", event.done, event.total)
        else:
            self.finished += 1
            if event.kind == "transfer" and event.row is not None:
                source = event.row.source
                self.by_source[source] += 1
                if self.by_source[source] == self.expected.get(source):
                    self.publish()


def write_set(
    session: Session, name: str, encoder_id: str, protocol: dict, rows: list
) -> EvidenceSet:
    """Create or rewrite a calibration's evidence set from its rows (one transaction). It is a
    default of its model when the model has none, or when its defaults share its protocol."""
    from workers.selection.evidence import summarise

    model = transfer_model_name(encoder_id)
    found = repository.by_name(session, name)
    if found is None:
        found = EvidenceSet(
            name=name,
            transfer_model=model,
            protocol=protocol,
            origin=EvidenceOrigin.CALIBRATION,
            note="the service's library calibration (library tasks as donors on probe targets)",
            is_default=False,
            file_hash="",
            summary={},
        )
        session.add(found)
        session.flush()
        if evidence.joins_defaults(session, found):
            evidence.make_default(session, found, True)
    repository.clear_rows(session, found.id)
    repository.add_rows(session, found.id, rows)
    found.summary = summarise(rows) | {"gain_basis": "given", "metrics": _metrics(rows)}
    found.file_hash = _rows_hash(rows)
    session.flush()
    return found


# --- helpers ---------------------------------------------------------------------------------


def _rows_hash(rows: Sequence[TransferRow]) -> str:
    """The rows' content, for the evidence stamp (cache keys): a rerun that changes a score
    under the same (source, target, seed) changes it, so no fit of the old scores answers."""
    content = sorted(((r.key, r.score, r.baseline, r.gain, r.metric) for r in rows), key=repr)
    return hashlib.sha256(repr(content).encode()).hexdigest()


def _default_set_name(model: str) -> str:
    base = transfer_model_name(model).replace("/", "-").replace("@", "-")
    return f"calibration-{base}"[:100]


def _results_path(settings: Settings, set_name: str) -> Path:
    return settings.artifacts_dir / "calibrations" / set_name / "results.csv"


def _baselines_done(results_csv: Path) -> frozenset[tuple[str, int]]:
    from workers.sweep import SweepPaths, read_baselines

    baselines = SweepPaths(results_csv, results_csv.parent).baselines
    return frozenset(read_baselines(baselines))


def _library(session: Session) -> dict[str, Task]:
    query = select(Task).where(Task.is_library.is_(True)).order_by(Task.id)
    return {t.name: t for t in session.scalars(query)}


def _probes(library: dict[str, Task], names: list[str]) -> list[Task]:
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in library]
    if unknown:
        problems = [
            Problem(field="probes", message=f"{n!r} is not a library task") for n in unknown
        ]
        raise EvidenceInvalid("unknown probe target(s)", problems=problems)
    probes = [library[n] for n in names]
    types = {t.type for t in probes}
    if len(probes) < MIN_PROBES or len(types) < MIN_PROBE_TYPES:
        message = (
            f"a calibration needs at least {MIN_PROBES} probe targets of {MIN_PROBE_TYPES} task "
            f"types (got {len(probes)} of {len(types)})"
        )
        raise EvidenceInvalid(message, problems=[Problem(field="probes", message=message)])
    return probes


def _sources(
    session: Session,
    library: dict[str, Task],
    wanted: str | list[str],
    model: str,
    probes: list[Task],
) -> list[Task]:
    if isinstance(wanted, list):
        unknown = [n for n in wanted if n not in library]
        if unknown:
            problems = [
                Problem(field="sources", message=f"{n!r} is not a library task") for n in unknown
            ]
            raise EvidenceInvalid("unknown source task(s)", problems=problems)
        return [library[n] for n in dict.fromkeys(wanted)]
    if wanted == "all":
        return list(library.values())
    asked = transfer_model_name(model)
    sets = [s for s in repository.all_sets(session) if same_transfer_model(asked, s.transfer_model)]
    donors = _donors(session, sets)
    return [t for name, t in library.items() if name not in donors]


def _donors(session: Session, sets: list[EvidenceSet]) -> set[str]:
    """Tasks measured as a source in ``sets``."""
    return repository.sources_of(session, [s.id for s in sets])


def _metrics(rows: list) -> list[str]:
    return sorted({r.metric for r in rows if r.metric})
