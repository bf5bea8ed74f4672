"""Engine commands that need no server: ``embed``, ``finetune``, ``transfer`` and ``similar``.

Engine modules (torch, transformers) are imported inside the commands so ``taskrec --help`` and
the service stay free of them at import time.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from service.cli.common import (
    JsonOption,
    UserError,
    print_json,
    progress_bars,
    stderr,
    stdout,
    top_components,
    user_errors,
)
from service.settings import Settings, get_settings
from service.transfers.schemas import MIXINGS, REGIMES, STRATEGIES, UNFREEZING
from workers.selection.methods import choices_text
from workers.strategies import ADAPTER_TRANSFERS

if TYPE_CHECKING:  # torch-free at run time: the CLI starts without loading the engine
    from workers.data.schema import TaskData
    from workers.embedder import Embedder
    from workers.similarity import RankedTask, TaskEmbedding

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", help="Encoder: a Hugging Face name or local folder (default: setting)."
    ),
]
SeedsOption = Annotated[str, typer.Option("--seeds", help="Comma-separated seeds, e.g. 0,1,2.")]
UnfreezingChoice = StrEnum("UnfreezingChoice", {name: name for name in UNFREEZING})
StrategyChoice = StrEnum("StrategyChoice", {name: name for name in STRATEGIES})
RegimeChoice = StrEnum("RegimeChoice", {name: name for name in REGIMES})
MixingChoice = StrEnum("MixingChoice", {name: name for name in MIXINGS})
AdapterTransferChoice = StrEnum("AdapterTransferChoice", {n: n for n in ADAPTER_TRANSFERS})
UnfreezingOption = Annotated[
    UnfreezingChoice,
    typer.Option(
        help="Full-model stages: none, or gradual (ULMFiT: the top layer in the first epoch, one "
        "more each epoch, the embeddings last)."
    ),
]
LayerLrDecayOption = Annotated[
    float,
    typer.Option(
        "--layer-lr-decay",
        help="Full-model stages: discriminative learning rates (ULMFiT): the top layer learns at "
        "--lr times this, each lower layer this factor lower again, the embeddings lowest; "
        "1 = the same rate everywhere (e.g. 0.9).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the engine commands to ``app``."""
    app.command()(embed)
    app.command()(finetune)
    app.command()(transfer)
    app.command()(similar)


def embed(
    task: Annotated[str, typer.Argument(help="Task folder, or a task name under the tasks root.")],
    method: Annotated[
        list[str], typer.Option("--method", help="taskemb, textemb or semb (repeatable).")
    ] = ["taskemb", "textemb"],  # noqa: B006 (Typer reads the default list)
    max_examples: Annotated[int | None, typer.Option(help="Examples to embed.")] = None,
    label_donor: Annotated[
        str | None,
        typer.Option(
            help="A task without labels: the labelled task (folder or name) of its label space "
            "whose trained head labels its TaskEmb."
        ),
    ] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compute a task's embeddings (cached on disk) and print their shape, or the vectors."""
    settings = get_settings()
    with user_errors():
        data = _load(task, settings, allow_unlabelled=True)  # TaskEmb samples missing labels
        donor = _label_donor(data, label_donor, settings) if "taskemb" in method else None
        embedder = build_embedder(settings, model, max_examples)
        with progress_bars(not as_json) as progress:
            embeddings = embedder.embed(data, method, progress, label_donor=donor)
    if as_json:
        print_json(
            {
                "task": data.name,
                "model": embedder.ref.id,
                "embeddings": {
                    m: {
                        "num_examples": e.num_examples,
                        "components": {c: v.tolist() for c, v in e.components.items()},
                    }
                    for m, e in embeddings.items()
                },
            }
        )
        return
    table = Table(
        "method", "components", "dimension", "examples", title=f"{data.name} — {embedder.ref.id}"
    )
    for m, e in embeddings.items():
        dims = {v.shape[0] for v in e.components.values()}
        table.add_row(m, str(len(e.components)), ",".join(map(str, dims)), str(e.num_examples))
    stdout.print(table)


def finetune(
    task: Annotated[str, typer.Argument(help="Task folder, or a task name under the tasks root.")],
    regime: Annotated[
        RegimeChoice, typer.Option(help="limited (1,000 train rows) or full.")
    ] = "full",
    train_n: Annotated[
        int | None, typer.Option(help="Training rows (overrides the regime).")
    ] = None,
    eval_n: Annotated[int | None, typer.Option(help="Validation rows to score on.")] = None,
    epochs: Annotated[float, typer.Option(help="Training epochs.")] = 3.0,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 32,
    learning_rate: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 5e-5,
    seeds: SeedsOption = "0",
    unfreezing: UnfreezingOption = "none",
    layer_lr_decay: LayerLrDecayOption = 1.0,
    save: Annotated[Path | None, typer.Option(help="Save the last seed's checkpoint here.")] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune the encoder on one task and score it; several seeds give mean ± std."""
    from workers.data.sampling import apply_regime
    from workers.encoder import load_encoder, load_tokenizer, resolve_encoder
    from workers.finetune import save_checkpoint, train_stage
    from workers.heads import TaskModel
    from workers.transfer import Summary

    settings = get_settings()
    with user_errors():
        seed_list = _seeds(seeds)
        data = apply_regime(
            _load(task, settings), regime, seed=seed_list[0], train_n=train_n, eval_n=eval_n
        )
        ref = resolve_encoder(model or settings.model)
        tokenizer = load_tokenizer(ref)
        config = _train_config(
            settings, epochs, batch_size, learning_rate, unfreezing, layer_lr_decay
        )
        stages = []
        with progress_bars(not as_json) as progress:
            for seed in seed_list:
                tuned = TaskModel(load_encoder(ref)[0])
                stage = f"finetune:{data.name}:seed{seed}"
                stages.append(
                    train_stage(
                        tuned, [data], tokenizer, config, seed=seed, stage=stage, progress=progress
                    )
                )
        if save is not None:
            meta = {"encoder": ref.id, "task": data.name, "seed": seed_list[-1]}
            meta.update(train_examples=len(data.train), metrics=stages[-1].metrics)
            save_checkpoint(tuned, tokenizer, save, {**meta, "train": config.to_dict()})
    scores = Summary.of([s.metrics[data.name]["score"] for s in stages])
    result = {
        "task": data.name,
        "metric": data.spec.metric.value,
        "model": ref.id,
        "train_examples": len(data.train),
        "seeds": seed_list,
        "score": {"mean": scores.mean, "std": scores.std, "values": scores.values},
        "runs": [{"seed": seed, **s.to_dict()} for seed, s in zip(seed_list, stages, strict=True)],
    }
    if as_json:
        print_json(result)
        return
    stdout.print(
        f"{data.name} ({data.spec.metric.value}, {len(data.train)} train rows, {ref.id}): "
        f"{scores.mean:.2f} ± {scores.std:.2f} over seeds {seed_list}"
    )


def transfer(
    source: Annotated[
        list[str], typer.Option("--source", help="Intermediate task (repeatable, in order).")
    ],
    target: Annotated[str, typer.Option("--target", help="Target task folder or name.")],
    strategy: Annotated[
        StrategyChoice, typer.Option(help="How sources and target train (workers.strategies).")
    ] = "sequential",
    mixing: Annotated[
        MixingChoice, typer.Option(help="multitask and joint: how tasks are drawn and weighed.")
    ] = "proportional",
    cap: Annotated[int, typer.Option(help="Examples-proportional size cap K.")] = 2**16,
    temperature: Annotated[float, typer.Option(help="Temperature T for temperature mixing.")] = 2.0,
    weight: Annotated[list[str], typer.Option(help="Loss weight TASK=λ (weights mixing).")] = [],  # noqa: B006
    regime: Annotated[
        RegimeChoice, typer.Option(help="Target data: limited (1,000 rows) or full.")
    ] = "full",
    source_n: Annotated[int | None, typer.Option(help="Training rows per source task.")] = None,
    target_n: Annotated[int | None, typer.Option(help="Training rows of the target.")] = None,
    eval_n: Annotated[int | None, typer.Option(help="Target validation rows to score on.")] = None,
    epochs: Annotated[float, typer.Option(help="Target-stage epochs.")] = 3.0,
    source_epochs: Annotated[float, typer.Option(help="Source-stage epochs.")] = 2.0,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 32,
    learning_rate: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 5e-5,
    seeds: SeedsOption = "0",
    unfreezing: UnfreezingOption = "none",
    layer_lr_decay: LayerLrDecayOption = 1.0,
    adapter_transfer: Annotated[
        AdapterTransferChoice,
        typer.Option(
            help="adapter: stack (a fresh target adapter over the merged source adapter) or "
            "continue (the source adapter goes on training on the target)."
        ),
    ] = "stack",
    adapter_rank: Annotated[
        int | None, typer.Option(help="adapter and fusion: LoRA rank (default 16).")
    ] = None,
    adapter_lr: Annotated[
        float | None,
        typer.Option(help="adapter and fusion: adapter stages' learning rate (default 1e-3)."),
    ] = None,
    fusion_lr: Annotated[
        float | None, typer.Option(help="fusion: the fusion stage's learning rate (default 1e-3).")
    ] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train on the source task(s), then the target; report the target next to its baseline.

    adapter and fusion keep the encoder frozen; source adapters are kept in the adapter library
    (TASKREC_ADAPTERS_PATH, default <data dir>/adapters) and reused by the next transfer from
    the same source, rows, epochs and seed."""
    from workers.adapter_library import AdapterLibrary
    from workers.adapters import AdapterConfig
    from workers.encoder import load_encoder, resolve_encoder
    from workers.finetune import MixingConfig
    from workers.transfer import TransferPlan, run_transfer

    settings = get_settings()
    with user_errors():
        seed_list = _seeds(seeds)
        given = {
            "rank": adapter_rank,
            "learning_rate": adapter_lr,
            "fusion_learning_rate": fusion_lr,
        }
        adapter = AdapterConfig(
            transfer=str(adapter_transfer), **{k: v for k, v in given.items() if v is not None}
        )
        sources = [_load(s, settings) for s in source]
        goal = _load(target, settings)
        # Each seed trains on its own sample of the target, all scored on one validation
        # sample: the transfer job's and the sweeps' protocol
        plan = TransferPlan(
            strategy=str(strategy),
            seeds=tuple(seed_list),
            regime=str(regime),
            source_n=source_n,
            target_n=target_n,
            eval_n=eval_n,
            source_train=_train_config(
                settings, source_epochs, batch_size, learning_rate, unfreezing, layer_lr_decay
            ),
            target_train=_train_config(
                settings, epochs, batch_size, learning_rate, unfreezing, layer_lr_decay
            ),
            mixing=MixingConfig(
                strategy=mixing, cap=cap, temperature=temperature, weights=_weights(weight)
            ),
            adapter=adapter,
        )
        plan.mixing.rates({s.name: len(s.train) for s in sources})  # fail fast on a bad rule
        ref = resolve_encoder(model or settings.model)
        encoder, tokenizer = load_encoder(ref)
        library = AdapterLibrary(settings.adapters_dir, ref.id)
        with progress_bars(not as_json) as progress:
            result = run_transfer(plan, sources, goal, encoder, tokenizer, progress, library)
    cost = result.cost()
    if as_json:
        print_json({"model": ref.id, **result.to_dict(), "cost": cost})
        return
    stdout.print(
        f"{' → '.join(result.sources)} → {result.target} ({result.strategy}, {result.metric}, "
        f"seeds {seed_list}):\n  baseline {result.baseline.mean:.2f} ± {result.baseline.std:.2f}"
        f"\n  transfer {result.transfer.mean:.2f} ± {result.transfer.std:.2f}"
        f"\n  gain     {result.gain.mean:+.2f} ± {result.gain.std:.2f}"
        f"\n  cost     {cost['seconds']:.0f} s on {cost['examples']} examples"
        + (
            f" ({cost['cached_seconds']:.0f} s more of cached adapters' training not spent)"
            if cost["cached_seconds"]
            else ""
        )
        + f": {cost['gain_per_hour']:+.2f} points an hour (baseline stages not counted)"
    )


def similar(
    target: Annotated[
        str, typer.Argument(help="Target task folder, or a task name under the tasks root.")
    ],
    library: Annotated[
        list[str],
        typer.Option("--library", help="A task folder or a folder of task folders (repeatable)."),
    ],
    method: Annotated[
        str | None,
        typer.Option(
            help=f"{choices_text()} (learned: the ranker file's ranker, TASKREC_RANKER_PATH; "
            "default: the default_method setting)."
        ),
    ] = None,
    max_examples: Annotated[int | None, typer.Option(help="Examples per embedding.")] = None,
    k: Annotated[str, typer.Option("--k", help="How many to show, or 'all'.")] = "10",
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rank library tasks as intermediate tasks for TARGET, without a server."""
    from service.recommendations.methods import method_evidence, resolve_method
    from service.tasks.service import is_labelled
    from workers.data.loaders import iter_task_dirs
    from workers.selection.methods import SERVED, reads

    settings = get_settings()
    method = method or resolve_method(settings)
    with user_errors():
        if method not in SERVED:
            raise UserError(f"unknown method {method!r}; choose one of {choices_text()}")
        limit = _top_k(k)
        goal = _load(target, settings, allow_unlabelled=True)  # a new task may have no labels yet
        folders = [d for root in library for d in iter_task_dirs(_existing_dir(root, settings))]
        goal_dir = _task_path(target, settings).resolve()
        folders = [d for d in dict.fromkeys(d.resolve() for d in folders) if d != goal_dir]
        embedder = build_embedder(settings, model, max_examples)
        methods = reads(method)
        unlabelled = "taskemb" in methods and not is_labelled(goal)
        # An unlabelled target's TaskEmb needs a label donor, chosen by TextEmb
        read = (*methods, "textemb") if unlabelled and "textemb" not in methods else methods
        tasks = {goal.name: goal}
        with progress_bars(not as_json) as progress:
            library_embs = {}
            for done, folder in enumerate(folders, 1):
                progress("library tasks", done - 1, len(folders))  # moves even when all cached
                task = _load(str(folder), settings)
                if task.name == goal.name:  # the target itself is never ranked
                    stderr.print(f"left out {folder}: it holds a task named as the target")
                    continue
                if task.name in library_embs:
                    raise UserError(f"two library tasks are named {task.name!r} (one is {folder})")
                tasks[task.name] = task
                library_embs[task.name] = embedder.embed(task, read, progress)
            progress("library tasks", len(folders), len(folders))
            donor = None
            if unlabelled:
                donor, method = _donor_from_library(goal, tasks, library_embs, embedder, method)
                methods = reads(method)
            target_embs = embedder.embed(goal, methods, progress, label_donor=donor)
        method, ranking, note = _ranked(goal, tasks, target_embs, library_embs, method, settings)
        ranking = ranking[:limit]
    evidence = method_evidence(settings)
    record = next(m.evaluation for m in evidence.methods if m.method == method)
    if as_json:
        print_json(
            {
                "target": goal.name,
                "method": method,
                "model": embedder.ref.id,
                "ranking": [r.to_dict() for r in ranking],
                "note": note,
                "evaluation": record,  # this method's leave-one-target-out record, if any
                "best": evidence.best,
            }
        )
        return
    table = Table(
        "rank",
        "task",
        "score",
        "top components",
        title=f"{goal.name} — {method} — {embedder.ref.id}",
    )
    for rank, item in enumerate(ranking, 1):
        table.add_row(str(rank), item.task, f"{item.score:.4f}", top_components(item.components))
    stdout.print(table)
    stdout.print(
        _evidence_line(method, record, evidence.best, settings.ranker_file), soft_wrap=True
    )


def _ranked(
    goal: TaskData,
    tasks: dict[str, TaskData],
    target_embs: dict[str, TaskEmbedding],
    library_embs: dict[str, dict[str, TaskEmbedding]],
    method: str,
    settings: Settings,
) -> tuple[str, list[RankedTask], str | None]:
    """(the method that ranked, the ranking, a note or None). ``learned`` without enough
    measured transfer among these tasks ranks by the best evidence-free method and says so, as
    the API does: never the ranker's prior dressed as a learned ranking."""
    from service.recommendations.methods import best_evidence_free
    from workers.selection.rankers import rank_learned, rank_sized
    from workers.similarity import rank_library

    note = None
    if method == "learned":
        embeddings = {goal.name: target_embs, **library_embs}
        ranking = rank_learned(goal.name, tasks.values(), embeddings, settings.ranker_file)
        if ranking is not None:
            return method, ranking, None
        method, why = best_evidence_free(settings, None)
        lacking = (
            f"too little measured transfer among these tasks in {settings.ranker_file}"
            if Path(settings.ranker_file).is_file()
            else f"no ranker file at {settings.ranker_file} (TASKREC_RANKER_PATH)"
        )
        note = f"{lacking} to fit the learned ranker: ranked by {method}, {why}"
        stderr.print(note, soft_wrap=True)
    if method == "sized":
        sizes = {name: len(task.train) for name, task in tasks.items()}
        return method, rank_sized(target_embs, library_embs, sizes), note
    return method, rank_library(target_embs, library_embs, method), note


def _donor_from_library(goal, tasks, library_embs, embedder, method: str):
    """The nearest labelled library task of the goal's label space (loaded) and the method to
    rank by: ``method``, or, where no task fits, the best that reads the text alone."""
    from service.recommendations.methods import best_without_taskemb
    from service.tasks.service import is_labelled
    from workers.selection.donor import choose_label_donor

    textemb = embedder.embed(goal, ["textemb"])["textemb"].components["mean"]
    candidates = {
        name: (tasks[name].spec, embs["textemb"].components["mean"])
        for name, embs in library_embs.items()
        if is_labelled(tasks[name])
    }
    name = choose_label_donor(goal.spec, textemb, candidates)
    if name is None:
        fallback = best_without_taskemb(get_settings(), None)
        stderr.print(
            f"{goal.name} has no labels and no library task shares its label space, so no "
            f"TaskEmb: ranked by {fallback}, which reads the text alone"
        )
        return None, fallback
    stderr.print(
        f"{goal.name} has no labels: its TaskEmb samples them from a head trained on {name}"
    )
    return tasks[name], method


def _label_donor(data, donor: str | None, settings: Settings):
    """The loaded donor of an unlabelled task (None for a labelled one); a donor whose labels
    are not the task's, or none for a task without labels, is a user error."""
    from service.tasks.service import is_labelled
    from workers.selection.donor import shares_label_space

    if is_labelled(data):
        return None
    if donor is None:
        raise UserError(
            f"{data.name} has no labels: its TaskEmb samples them from a head trained on a "
            "labelled task of its label space; name one with --label-donor TASK (`taskrec "
            "similar` picks the nearest from its library)"
        )
    loaded = _load(donor, settings)
    if not shares_label_space(data.spec, loaded.spec):
        raise UserError(f"--label-donor {donor}: its labels are not {data.name}'s")
    return loaded


def _evidence_line(method: str, record: dict, best: str | None, ranker_file: Path) -> str:
    """How ``method`` measured on held-out targets (from the ranker file), in one line."""
    measured = record.get("all")
    if not measured:
        return (
            f"{method} has no measured record here: `taskrec evaluate --save-ranker "
            f"{ranker_file}` stores one"
        )
    regrets = [k for k in measured if k.startswith("regret@")]
    parts = [f"ρ {measured['rho']:.2f}", f"NDCG {measured['ndcg']:.3f}"]
    parts += [f"Regret@{k[7:]} {measured[k]:.2f}%" for k in regrets if measured[k] is not None]
    line = f"{method} on {int(measured['targets'])} held-out targets: {', '.join(parts)}"
    return line + (f" (best measured: {best})" if best and best != method else "")


def _load(task: str, settings: Settings, allow_unlabelled: bool = False):
    from workers.data.loaders import load_task_dir

    return load_task_dir(_task_path(task, settings), allow_unlabelled=allow_unlabelled)


def _task_path(task: str, settings: Settings) -> Path:
    from workers.data.loaders import resolve_task_path

    return Path(resolve_task_path(task, settings.tasks_root))


def _existing_dir(path: str, settings: Settings) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"library folder not found: {path}")
    return folder


def build_embedder(settings: Settings, model: str | None, max_examples: int | None) -> Embedder:
    """The CLI's ``Embedder``: encoder ``model`` (default: the setting) over the shared cache."""
    from workers.cache import EmbeddingCache
    from workers.embedder import Embedder
    from workers.encoder import resolve_encoder

    return Embedder(
        resolve_encoder(model or settings.model),
        embedding_config(settings, max_examples),
        EmbeddingCache(settings.cache_dir, settings.embedding_seed_paths),
    )


def embedding_config(settings: Settings, max_examples: int | None = None):
    """The engine's ``EmbeddingConfig`` from settings (``max_examples`` overrides the setting)."""
    from workers.embeddings import EmbeddingConfig, resolve_precision
    from workers.features import FeatureConfig

    return EmbeddingConfig(
        max_examples=max_examples or settings.max_examples,
        seed=settings.embed_seed,
        batch_size=settings.embed_batch_size,
        features=FeatureConfig(
            max_length=settings.max_length, qa_max_length=settings.qa_max_length
        ),
        head_training=settings.taskemb_head_training,
        labels=settings.taskemb_labels,
        train_epochs=settings.taskemb_train_epochs,
        device=settings.device,
        precision=resolve_precision(settings.embed_precision, settings.device),
    )


def _train_config(
    settings: Settings,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    unfreezing: str,
    layer_lr_decay: float = 1.0,
):
    from workers.features import FeatureConfig
    from workers.finetune import TrainConfig

    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        unfreezing=str(unfreezing),
        layer_lr_decay=layer_lr_decay,
        features=FeatureConfig(
            max_length=settings.max_length, qa_max_length=settings.qa_max_length
        ),
        device=settings.device,
        report_scoring=True,  # a bar while validation rows are scored, too
    )


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds:
        raise UserError("--seeds needs at least one seed")
    return seeds


def _weights(pairs: list[str]) -> dict[str, float]:
    weights: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            raise UserError(f"--weight takes TASK=NUMBER, got {pair!r}") from None
    return weights


def _top_k(k: str) -> int | None:
    if k == "all":
        return None
    if not k.isdigit() or int(k) < 1:
        raise UserError(f"--k takes a positive number or 'all', got {k!r}")
    return int(k)
