"""Source-selection commands: ``sweep`` (measure transfer) and ``evaluate`` (score rankers).

Engine modules are imported inside the commands: ``taskrec --help`` and the service never pay
for torch at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.cli.common import UserError, print_json, stderr, stdout, user_errors
from service.cli.engine import (
    AdapterTransferChoice,
    JsonOption,
    ModelOption,
    StrategyChoice,
    build_embedder,
)
from service.settings import Settings, get_settings
from workers.selection.methods import METHODS


def _reflow(text: str) -> str:
    """Join each prose paragraph into one line (Rich wraps it); indented blocks stay as written."""
    blocks = text.strip().split("\n\n")
    return "\n\n".join(b if b.startswith("  ") else " ".join(b.split("\n")) for b in blocks)


SWEEP_HELP = _reflow(
    """Measure transfer: every source × target × seed, next to its no-transfer baseline.

Each source is trained once and its encoder cached under the checkpoints folder; each target ×
seed is trained from the plain encoder once (the baseline, shared by all sources) and from every
source's encoder. Rows go to --out (source,target,seed,score,baseline,gain,metric), each one
fsynced as it finishes.

RESUMABLE: after a crash, Ctrl-C or kill -9, run the same command again: finished runs are
skipped and cached sources loaded; at most the run in flight is lost. Seeds, sources and targets
may be added later to the same --out; changed sizes, epochs or model are refused (they are
pinned in <out>.sweep.json), and so is a task whose data changed (hashes in <out>.tasks.json).

Tasks are names under the tasks root (TASKREC_TASKS_ROOT) or folders, comma-separated or
repeated; "all" is every task under the root.

--strategy adapter and fusion keep each source's adapter in the adapter library under the
checkpoints folder, so an adapter sweep and a fusion sweep with the same settings and
--checkpoints share them. A fusion sweep measures one run per target × seed, fusing the adapters
of every source but the target; its rows' source is their names joined by "+" (snli+qnli+sick),
which taskrec evaluate refuses (it scores single sources).

Cost in the limited regime (1,000 source rows, 200 target rows, at most 500 validation rows, 128
tokens): (sources × targets + targets) × seeds target runs plus one stage per source. With MiniLM
on a busy 2-core CPU one stage takes about 4 minutes (trec → rte, one seed: baseline, source and
transfer in 16 minutes), so a 20 × 10 × 3 matrix at those sizes is some 40 hours there: run it
on a GPU, or grow it over several sessions (it resumes). Try two sources and one seed first,
then grow the same --out.

The project's matrix (20 sources of all five types × 14 targets × 3 seeds, 8 on the four
noisiest targets; 64 tokens, 200 target rows for 3 epochs, 200 scored rows; 1,240 rows) is made
by results/run-matrix.sh, which runs two one-thread sweeps over halves of the sources into
results/matrix.csv. At those sizes the two made 1.8-5.5 rows a minute together on the 2-core CPU
(multiple-choice and QA targets cost 4-5 times a classification one).
bash results/evaluate.sh evaluates it and regenerates docs/results.md and results/ranker.json.
"""
)


def register(app: typer.Typer) -> None:
    """Add ``sweep`` and ``evaluate`` to ``app``."""
    app.command(help=SWEEP_HELP)(sweep)
    app.command()(evaluate)


def sweep(
    sources: Annotated[
        list[str], typer.Option("--sources", help="Source tasks (comma-separated, repeatable).")
    ],
    targets: Annotated[
        list[str], typer.Option("--targets", help="Target tasks (comma-separated, repeatable).")
    ],
    regime: Annotated[str, typer.Option(help="limited or full.")] = "limited",
    source_n: Annotated[
        int | None, typer.Option(help="Source training rows (limited: 1,000).")
    ] = None,
    target_n: Annotated[
        int | None, typer.Option(help="Target training rows (limited: 200).")
    ] = None,
    eval_n: Annotated[
        int | None, typer.Option(help="Target validation rows scored (limited: 500).")
    ] = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated target seeds.")] = "0,1,2",
    out: Annotated[Path, typer.Option(help="Results CSV (appended to).")] = Path(
        "results/matrix.csv"
    ),
    checkpoints: Annotated[
        Path | None, typer.Option(help="Source checkpoints (default: <data dir>/checkpoints).")
    ] = None,
    source_epochs: Annotated[float, typer.Option(help="Source-stage epochs.")] = 2.0,
    target_epochs: Annotated[float, typer.Option(help="Target-stage epochs.")] = 5.0,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 32,
    learning_rate: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 5e-5,
    max_length: Annotated[int | None, typer.Option(help="Max tokens (limited: 128).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Cap on steps per stage.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    strategy: Annotated[
        StrategyChoice,
        typer.Option(
            help="How each (source, target) run trains (workers.strategies); pinned with the "
            "results file, whose baselines are the strategy's. fusion: one run per target × "
            "seed, AdapterFusion over every source but the target (source column a+b+c)."
        ),
    ] = "sequential",
    adapter_transfer: Annotated[
        AdapterTransferChoice, typer.Option(help="adapter: stack or continue.")
    ] = "stack",
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run or resume a transfer sweep (help: SWEEP_HELP)."""
    from workers.adapters import AdapterConfig
    from workers.encoder import resolve_encoder
    from workers.sweep import SweepConfig, SweepPaths, SweepSettingsError, run_sweep

    settings = get_settings()
    with user_errors():
        config = SweepConfig(
            regime=regime,
            source_n=source_n,
            target_n=target_n,
            eval_n=eval_n,
            seeds=tuple(_ints(seeds, "--seeds")),
            source_epochs=source_epochs,
            target_epochs=target_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_length=max_length,
            max_steps=max_steps,
            device=settings.device,
            strategy=str(strategy),
            adapter=AdapterConfig(transfer=str(adapter_transfer)),
        )
        source_tasks = _load_tasks(_names(sources, settings), settings)
        target_tasks = _load_tasks(_names(targets, settings), settings)
        paths = SweepPaths(results=out, checkpoints=checkpoints or settings.checkpoints_dir)
        ref = resolve_encoder(model or settings.model)
        if threads:
            import torch

            torch.set_num_threads(threads)
        try:
            with _sweep_progress(not as_json) as on_event:
                report = run_sweep(source_tasks, target_tasks, ref, paths, config, on_event)
        except SweepSettingsError as error:
            raise UserError(str(error)) from None
    summary = {
        "results": str(out),
        "model": ref.id,
        "transfers_run": report.transfers_run,
        "baselines_run": report.baselines_run,
        "sources_trained": report.sources_trained,
        "sources_cached": report.sources_loaded,
        "skipped_finished": report.skipped,
    }
    if as_json:
        print_json({**summary, "rows": [r.__dict__ for r in report.rows]})
        return
    stdout.print(
        f"{report.transfers_run} transfers and {report.baselines_run} baselines run, "
        f"{report.sources_trained} sources trained ({report.sources_loaded} cached), "
        f"{report.skipped} runs already finished; results in {out}"
    )


def evaluate(
    results_csv: Annotated[
        Path | None,
        typer.Argument(help="Transfer results CSV (from a sweep); the same as --test."),
    ] = None,
    test: Annotated[
        Path | None,
        typer.Option(help="The results CSV whose targets are scored (the positional CSV)."),
    ] = None,
    train: Annotated[
        Path | None,
        typer.Option(
            help="Fit on this other results CSV (another protocol or transfer model) instead: "
            "each --test target is ranked from --train's rows, none of its own, and scored on "
            "--test's."
        ),
    ] = None,
    library: Annotated[
        list[str],
        typer.Option(
            "--library", help="Folder of task folders (repeatable; default: the tasks root)."
        ),
    ] = [],  # noqa: B006 (Typer reads the default list)
    methods: Annotated[
        list[str],
        typer.Option(
            "--methods",
            help=f"Ranking methods (comma-separated, repeatable): {', '.join(METHODS)}, "
            "taskemb:<component>, taskemb:* (default: the selection_methods setting).",
        ),
    ] = [],  # noqa: B006
    within_type: Annotated[
        bool, typer.Option("--within-type", help="Also rank within the target's task type.")
    ] = False,
    ks: Annotated[str, typer.Option("--ks", help="Comma-separated k of Regret@k.")] = "1,3",
    relevance: Annotated[
        str, typer.Option(help="NDCG relevance from negative gains: shift or clip.")
    ] = "shift",
    pool: Annotated[
        str,
        typer.Option(
            help="What each method ranks: library (every task under --library but the target, "
            "as the API ranks; the measured sources are scored in that order) or measured (the "
            "target's measured sources alone)."
        ),
    ] = "library",
    per_target: Annotated[
        bool, typer.Option("--per-target", help="Also print ρ and Regret per target.")
    ] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG summary here.")] = None,
    save_ranker: Annotated[
        Path | None,
        typer.Option(help="Fit the learned ranker on ALL rows and save it here (JSON)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write a Markdown results page here (figures in a folder beside it): the "
            "matrix, this evaluation, gains per target, the tasks' embedding map."
        ),
    ] = None,
    fresh_targets: Annotated[
        list[str],
        typer.Option(
            help="Targets measured after the ranker's settings were chosen (comma-separated, "
            "repeatable): the report scores them apart, as the out-of-sample check."
        ),
    ] = [],  # noqa: B006 (typer reads the default; it is never mutated)
    evidence_sets: Annotated[
        list[str],
        typer.Option(
            "--evidence-set",
            help="NAME=CSV (repeatable), with --report: the page compares these evidence sets "
            "(each leave-one-target-out, each fitted on another, library coverage). NAME=A+B "
            "is one set of several CSVs of one protocol and transfer model, as a request "
            "names sets together.",
        ),
    ] = [],  # noqa: B006 (typer reads the default; it is never mutated)
    max_examples: Annotated[int | None, typer.Option(help="Examples per embedding.")] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score ranking methods leave-one-target-out on measured transfers (ρ, NDCG, Regret@k).

    For each target, its own rows are set aside; every method ranks the sources measured on it
    using only the other targets' rows (the learned ranker is trained on those alone), and the
    set-aside rows then score the ranking. Random is its exact expectation; oracle the ceiling.

    Embeddings come from the cache: run from the repository without TASKREC_CACHE_PATH, it is
    the committed results/embeddings (fp32), so nothing is recomputed.
    """
    from workers.research.evaluate import POOLS, EvalConfig
    from workers.research.evaluate import evaluate as run_evaluation
    from workers.research.evaluate import plot as draw
    from workers.selection.rankers import LearnedRanker, embedding_methods_needed, expand_methods
    from workers.selection.results import read_results, single_source_rows

    settings = _repository_embeddings(get_settings(), not as_json)
    with user_errors():
        results_csv = _scored_file(results_csv, test)
        rows = single_source_rows(read_results(results_csv), results_csv)
        if not rows:
            raise UserError(f"{results_csv} holds no transfer rows")
        train_rows = single_source_rows(read_results(train), train) if train is not None else None
        if train is not None and report is not None:
            raise UserError("--report describes one matrix: leave out --train")
        learn_from = train_rows if train_rows is not None else rows
        compared = _evidence_files(evidence_sets)
        if compared and report is None:
            raise UserError("--evidence-set compares sets on the results page: add --report")
        wanted = _split(methods) or _split([settings.selection_methods])
        every = [*rows, *learn_from, *(r for item in compared for r in item.rows)]
        names = {name for r in every for name in (r.source, r.target)}
        if pool not in POOLS:
            raise UserError(f"--pool takes {' or '.join(POOLS)}, got {pool!r}")
        needed = embedding_methods_needed(wanted)
        lib = _library(names, library, needed, settings, model, max_examples, not as_json)
        if pool == "library":  # the API ranks every embedded library task
            lib = _with_pool(lib, library, needed, settings, model, max_examples)
        config = EvalConfig(
            methods=tuple(expand_methods(wanted, lib)),
            ks=tuple(_ints(ks, "--ks")),
            scopes=("all", "within") if within_type else ("all",),
            relevance=relevance,
            pool=pool,
        )
        result = run_evaluation(rows, lib, config, train=train_rows)
        if plot is not None:
            draw(result, plot)
        fitted = None
        if save_ranker is not None or (report is not None and "learned" in config.methods):
            fitted = LearnedRanker(lib, config.learned).fit(learn_from)  # on every row
        if save_ranker is not None:
            summary = result.to_dict()["summary"]  # shown by GET /v1/recommendations/methods
            measured = _transfer_model_of(train if train is not None else results_csv)
            fitted.save(save_ranker, evaluation=summary, transfer_model=measured)
        if report is not None:
            argv = [str(results_csv), *(f"--library={x}" for x in library)]
            argv += [f"--methods={','.join(wanted)}", f"--ks={ks}", f"--relevance={relevance}"]
            argv += [f"--pool={pool}"]
            argv += ["--within-type"] * within_type + ["--per-target"] * per_target
            argv += [f"--save-ranker={save_ranker}"] * (save_ranker is not None)
            fresh = _split(fresh_targets)
            argv += [f"--fresh-targets={','.join(fresh)}"] * bool(fresh)
            argv += [f"--max-examples={max_examples}"] * (max_examples is not None)
            argv += [f"--model={model}"] * (model is not None) + [f"--report={report}"]
            argv += [f"--evidence-set={x}" for x in evidence_sets]
            ranker = fitted if "learned" in config.methods else None
            section = None
            if compared:
                section = _evidence_section(compared, lib, config, library, settings)
            _write_report(rows, result, lib, report, results_csv, argv, ranker, fresh, section)
    if as_json:
        print_json(result.to_dict())
        return
    stdout.print(_summary_table(result))
    if per_target:
        stdout.print(_per_target_table(result, max(config.ks)))
    for skip in result.skipped:
        stderr.print(f"skipped {skip['target']} ({skip['scope']}): {skip['reason']}")


# --- helpers ---------------------------------------------------------------------------------


REPOSITORY_EMBEDDINGS = Path("results/embeddings")  # results/embed-library.sh's, in fp32


def _repository_embeddings(settings: Settings, say: bool) -> Settings:
    """The repository's committed embeddings when no cache was chosen and they are here."""
    if settings.cache_path is not None or not REPOSITORY_EMBEDDINGS.is_dir():
        return settings
    if say:
        stderr.print(
            f"embeddings from {REPOSITORY_EMBEDDINGS} (the repository's, fp32); set "
            "TASKREC_CACHE_PATH to read another cache"
        )
    update = {"cache_path": REPOSITORY_EMBEDDINGS, "embed_precision": "fp32"}
    return settings.model_copy(update=update)


COMPARED_METHODS = ("random", "datasize", "semb", "taskemb", "fused", "sized", "learned", "oracle")


def _evidence_files(specs: list[str]) -> list[Any]:
    """``NAME=CSV`` (or ``NAME=A.csv+B.csv+...``) options as the report's evidence sets (rows
    and pinned settings). The CSVs of one set must pin one protocol and one transfer model, as
    the sets a request names together must, and measure each (source, target, seed) once."""
    from workers.research.report import EvidenceSetFile
    from workers.selection.results import pinned_settings, read_results, single_source_rows

    found = []
    for spec in specs:
        name, sep, joined = spec.partition("=")
        paths = _set_paths(joined)
        if not sep or not name or not paths:
            raise UserError(f"--evidence-set takes NAME=CSV or NAME=A.csv+B.csv, got {spec!r}")
        pinned = [pinned_settings(path) for path in paths]
        _same_protocol(name, paths, pinned)
        rows, measured_in = [], {}
        for path in paths:
            for row in single_source_rows(read_results(path), path):
                if row.key in measured_in:
                    source, target, seed = row.key
                    raise UserError(
                        f"--evidence-set {name}: {source} → {target}, seed {seed}, is measured "
                        f"in both {measured_in[row.key]} and {path}"
                    )
                measured_in[row.key] = path
                rows.append(row)
        found.append(EvidenceSetFile(name, rows, pinned[0]))
    return found


def _set_paths(joined: str) -> list[str]:
    """A set's CSVs: ``joined`` itself where it is a file (a name may hold ``+``), else its
    ``+``-separated parts; an empty part makes the list empty (the caller refuses it)."""
    if not joined or Path(joined).is_file():
        return [joined] if joined else []
    parts = joined.split("+")
    return parts if all(parts) else []


def _same_protocol(name: str, paths: list[str], pinned: list[dict]) -> None:
    """Refuse CSVs of different protocols or transfer models in one set, as the service does
    (the protocol is the pinned settings but the encoder, which names the transfer model)."""
    from itertools import pairwise

    from workers.selection.evidence import same_transfer_model

    protocols = [{k: v for k, v in p.items() if k != "encoder"} for p in pinned]
    if any(p != protocols[0] for p in protocols[1:]):
        raise UserError(
            f"--evidence-set {name}: {' and '.join(paths)} pin different protocols (their "
            ".sweep.json); sets of different protocols are never merged"
        )
    encoders = [p.get("encoder") for p in pinned]
    if any(a and b and not same_transfer_model(a, b) for a, b in pairwise(encoders)):
        raise UserError(
            f"--evidence-set {name}: {' and '.join(paths)} fine-tuned different transfer models "
            f"({', '.join(str(e) for e in encoders)}): rank each model with its own"
        )


def _evidence_section(
    compared: list[Any], lib, config, roots: list[str], settings: Settings
) -> str:
    """Each set leave-one-target-out, each set's targets from a ranker fitted on each other
    set, and how many library tasks (the folders under ``roots``, default the tasks root) the
    sets give a donor record."""
    import dataclasses

    from workers.data.loaders import iter_task_dirs
    from workers.research.evaluate import evaluate as run_evaluation
    from workers.research.report import evidence_section

    methods = tuple(m for m in COMPARED_METHODS if m in config.methods)
    small = dataclasses.replace(config, methods=methods, scopes=("all",))
    learned_only = dataclasses.replace(small, methods=("learned",))
    own = {item.name: run_evaluation(item.rows, lib, small) for item in compared}
    crossed = {
        (a.name, b.name): run_evaluation(b.rows, lib, learned_only, train=a.rows)
        for a in compared
        for b in compared
        if a.name != b.name and "learned" in methods
    }
    folders = roots or [str(settings.tasks_root)]
    # Overlapping roots list a folder twice: count it once
    library = list(dict.fromkeys(d.name for root in folders for d in iter_task_dirs(Path(root))))
    return evidence_section(compared, own, crossed, library)


def _scored_file(results_csv: Path | None, test: Path | None) -> Path:
    if results_csv is not None and test is not None:
        raise UserError("give the scored CSV once: as the argument or as --test")
    scored = results_csv or test
    if scored is None:
        raise UserError("give a results CSV to score (the argument or --test)")
    return scored


def _transfer_model_of(results_csv: Path) -> str | None:
    """The model a sweep fine-tuned (its pinned ``encoder``), normalised; None if unknown."""
    from workers.selection.evidence import transfer_model_name
    from workers.selection.results import pinned_settings

    encoder = pinned_settings(results_csv).get("encoder")
    return transfer_model_name(encoder) if encoder else None


REPORT_ENV = ("TASKREC_CACHE_PATH", "TASKREC_EMBED_PRECISION", "TASKREC_MAX_EXAMPLES")


def _write_report(
    rows,
    result,
    lib,
    report: Path,
    results_csv: Path,
    argv: list[str],
    ranker,
    fresh: list[str],
    evidence: str | None = None,
) -> None:
    import os
    import shlex

    from workers.research.report import write_report
    from workers.selection.results import pinned_settings

    sweep = pinned_settings(results_csv) or None
    # Settings that decide which embeddings are read go in front, so the line reruns as it ran.
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in REPORT_ENV if k in os.environ]
    command = " ".join([*env, "taskrec evaluate", *(shlex.quote(a) for a in argv)])
    path = write_report(rows, result, lib, report, command, sweep, ranker, fresh, evidence)
    stderr.print(f"wrote {path} and its figures in {path.with_suffix('')}/")


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in _split([text])]
    except ValueError:
        raise UserError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values:
        raise UserError(f"{option} needs at least one value")
    return values


def _names(values: list[str], settings: Settings) -> list[str]:
    """Task names or paths; ``all`` expands to every task folder under the tasks root."""
    from workers.data.loaders import iter_task_dirs

    names: list[str] = []
    for value in _split(values):
        if value == "all":
            names += [str(d) for d in iter_task_dirs(settings.tasks_root)]
        else:
            names.append(value)
    if not names:
        raise UserError("no tasks given")
    return list(dict.fromkeys(names))


def _load_tasks(names: list[str], settings: Settings) -> list[Any]:
    from workers.data.loaders import load_task_dir, resolve_task_path

    return [load_task_dir(resolve_task_path(n, settings.tasks_root)) for n in names]


def _with_pool(
    lib,
    roots: list[str],
    methods: set[str],
    settings: Settings,
    model: str | None,
    max_examples: int | None,
):
    """``lib`` plus every other task under ``roots`` whose embeddings the cache holds: the pool
    the API ranks (``--pool library``). A folder that does not load, or whose embeddings are
    not cached, is left out with a warning (nothing is computed or written), as the service
    skips a bad folder and ranks no task before it is embedded."""
    from workers.data.loaders import iter_task_dirs, load_task_dir
    from workers.selection.rankers import Library

    embedder = build_embedder(settings, model, max_examples)
    extra, skipped = [], []
    for folder in (
        d for root in roots or [str(settings.tasks_root)] for d in iter_task_dirs(Path(root))
    ):
        if folder.name in lib.specs:
            continue
        try:
            task = load_task_dir(folder)
        except Exception as error:
            skipped.append(f"{folder.name} ({_first_line(error)})")
            continue
        if task.name in lib.specs:
            continue
        found = embedder.cached(task, sorted(methods)) if methods else {}
        if found is None:
            skipped.append(f"{task.name} (not embedded in the cache)")
            continue
        extra.append((task, found))
    if skipped:
        stderr.print(f"left out of the ranked pool: {', '.join(skipped)}", soft_wrap=True)
    found_by_name = {task.name: found for task, found in extra}
    pool = Library.from_tasks(
        [t for t, _ in extra], (lambda t: found_by_name[t.name]) if methods else None
    )
    return lib.merged(pool)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:120]


def _library(
    names: set[str],
    roots: list[str],
    methods: set[str],
    settings: Settings,
    model: str | None,
    max_examples: int | None,
    show_progress: bool,
):
    """A ``Library`` of the tasks named in the results, found under ``roots``, with embeddings."""
    from workers.data.loaders import iter_task_dirs, load_task_dir
    from workers.selection.rankers import Library

    roots = roots or [str(settings.tasks_root)]
    folders = [d for root in roots for d in iter_task_dirs(Path(root))]
    # Folder names usually are task names: load those first, open the rest only if some lack.
    by_folder = [d for d in folders if d.name in names]
    tasks = {t.name: t for t in map(load_task_dir, by_folder)}
    for folder in (d for d in folders if d.name not in names and len(tasks) < len(names)):
        task = load_task_dir(folder)
        if task.name in names:
            tasks[task.name] = task
    missing = sorted(names - tasks.keys())
    if missing:
        raise UserError(f"not found in the library folders: {', '.join(missing)} (use --library)")
    embed = None
    if methods:
        embedder = build_embedder(settings, model, max_examples)
        embed = lambda task: embedder.embed(task, sorted(methods))  # noqa: E731
    with _steps(show_progress, "embedding library", len(tasks)) as advance:
        ordered = [tasks[n] for n in sorted(tasks)]

        def embed_one(task):
            found = embed(task) if embed else {}
            advance()
            return found

        return Library.from_tasks(ordered, embed_one if embed else None)


@contextmanager
def _steps(enabled: bool, label: str, total: int) -> Iterator[Any]:
    if not enabled:
        yield lambda: None
        return
    with Progress(*_columns(), console=stderr) as progress:
        bar = progress.add_task(label, total=total)
        yield lambda: progress.advance(bar)


def _columns() -> tuple:
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


@contextmanager
def _sweep_progress(enabled: bool) -> Iterator[Any]:
    """A sweep event callback: one bar for runs overall, one for the stage in progress."""
    if not enabled:
        yield lambda event: None
        return
    with Progress(*_columns(), console=stderr) as progress:
        overall = progress.add_task("runs", total=None)
        stage = progress.add_task("", total=None)

        def on_event(event) -> None:
            if event.kind == "plan":
                progress.update(overall, total=event.total, completed=0)
            elif event.kind == "step":
                progress.update(
                    stage, description=event.label, completed=event.done, total=event.total
                )
            elif event.kind in ("baseline", "transfer"):
                progress.update(overall, completed=event.done, description=f"runs: {event.label}")

        yield on_event


def _summary_table(result) -> Table:
    ks = result.config.ks
    table = Table(title="Leave-one-target-out (means over targets)")
    table.add_column("scope")
    table.add_column("method", overflow="fold")
    for name in ("targets", "ρ ↓", "NDCG ↑", *(f"Regret@{k} % ↓" for k in ks)):
        table.add_column(name, justify="right")
    for row in result.summary():
        regrets = [f"{row[f'regret@{k}']:.2f}" for k in ks]
        table.add_row(
            row["scope"],
            row["method"],
            str(row["targets"]),
            f"{row['rho']:.2f}",
            f"{row['ndcg']:.3f}",
            *regrets,
        )
    return table


def _per_target_table(result, k: int) -> Table:
    """One row per target and method, grouped by target: readable at any terminal width."""
    table = Table(title="Per target")
    for name in ("scope", "target", "sources", "method"):
        table.add_column(name, overflow="fold")
    for name in ("ρ", "NDCG", f"Regret@{k} %", "top pick"):
        table.add_column(name, justify="right" if name != "top pick" else "left")
    ordered = sorted(result.results, key=lambda r: (r.scope, r.target))
    for i, r in enumerate(ordered):
        first = i == 0 or (ordered[i - 1].scope, ordered[i - 1].target) != (r.scope, r.target)
        table.add_row(
            r.scope if first else "",
            r.target if first else "",
            str(r.sources) if first else "",
            r.method,
            f"{r.rank:g}",
            f"{r.ndcg:.3f}",
            f"{r.regret[k]:.2f}",
            r.ranking[0] if r.ranking else "",
            end_section=i + 1 < len(ordered) and (ordered[i + 1].target != r.target),
        )
    return table
