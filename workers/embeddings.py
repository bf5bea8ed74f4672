"""Task embeddings: TaskEmb (diagonal empirical Fisher of the task loss w.r.t. the encoder's
activations, Vu et al. 2020) and TextEmb / SEmb (mean-pooled token representations).

Every embedding records the encoder (name + revision) it came from, the settings and how many
examples it saw; vectors from different encoders must never be compared.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.data.sampling import subsample
from workers.data.schema import TaskData, TaskType
from workers.encoder import EncoderRef, pick_device, transformer_layers
from workers.features import FeatureConfig, collate, encode, length_grouped_batches
from workers.finetune import TrainConfig, autocast, set_seed, train_stage
from workers.heads import IGNORE_INDEX, TaskModel
from workers.similarity import (  # its type lives with the torch-free similarity code
    EMBEDDING_METHODS,
    TaskEmbedding,
)

METHODS = EMBEDDING_METHODS
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EmbeddingConfig:
    """What decides an embedding's value: part of its cache key."""

    max_examples: int = 1000
    seed: int = 0
    batch_size: int = 32
    features: FeatureConfig = field(default_factory=FeatureConfig)
    head_training: str = "full"  # "full" (encoder + head) or "head" (encoder frozen)
    train_epochs: float = 1.0  # brief task fine-tuning before the Fisher pass
    learning_rate: float = 5e-5
    labels: str = "data"  # "data" (empirical Fisher) or "sampled" (from the model's predictions)
    device: str | None = None
    # Forward passes in "fp32" or under "bf16" autocast (see ``resolve_precision``; "auto" is
    # resolved before a config is made, so the cache key says which one made a vector)
    precision: str = "fp32"

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_precision(precision: str, device: str | None = None) -> str:
    """``"auto"``: bf16 where it is fast (CUDA, or a CPU with native bf16 such as AVX512-BF16 or
    AMX: about 2.6× fp32 matmul speed on this project's CPU); fp32 elsewhere."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"unknown precision {precision!r} (auto, fp32 or bf16)")
    if precision != "auto":
        return precision
    if pick_device(device).type == "cuda":
        return "bf16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def compute_textemb(
    task: TaskData,
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    ref: EncoderRef,
    config: EmbeddingConfig = EmbeddingConfig(),
    progress: ProgressCallback | None = None,
) -> dict[str, TaskEmbedding]:
    """TextEmb (token average over the whole sample) and SEmb (mean of per-example means)."""
    examples = subsample(task.train, config.max_examples, config.seed)
    features = encode(examples, task.spec, tokenizer, config.features)
    device = pick_device(config.device)
    encoder = encoder.to(device).eval()
    token_sum = torch.zeros(encoder.config.hidden_size, dtype=torch.float64)
    sentence_sum = torch.zeros_like(token_sum)
    tokens = sentences = 0
    batches = list(length_grouped_batches(features, config.batch_size, shuffle=False))
    with torch.inference_mode():
        for step, indices in enumerate(batches, 1):
            batch = _to(
                collate([features[i] for i in indices], tokenizer.pad_token_id or 0), device
            )
            with autocast(device, config.precision):
                hidden = TaskModel(encoder).encode(batch).float()  # (batch, seq, hidden)
            mask = _flat_mask(batch).unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
            token_sum += (hidden * mask).sum((0, 1)).double().cpu()
            per_sequence = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (batch, hidden)
            sentence_sum += per_sequence[mask.sum((1, 2)) > 0].sum(0).double().cpu()
            tokens += int(mask.sum())
            sentences += int((mask.sum((1, 2)) > 0).sum())
            if progress:
                progress(f"textemb:{task.name}", step, len(batches))
    settings = {**config.to_dict(), "method": "textemb"}
    return {
        "textemb": TaskEmbedding(
            task.name,
            "textemb",
            ref,
            {"mean": (token_sum / tokens).numpy().astype(np.float32)},
            len(examples),
            settings,
        ),
        "semb": TaskEmbedding(
            task.name,
            "semb",
            ref,
            {"mean": (sentence_sum / sentences).numpy().astype(np.float32)},
            len(examples),
            {**settings, "method": "semb"},
        ),
    }


def compute_taskemb(
    task: TaskData,
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    ref: EncoderRef,
    config: EmbeddingConfig = EmbeddingConfig(),
    progress: ProgressCallback | None = None,
    label_donor: TaskData | None = None,
) -> TaskEmbedding:
    """Diagonal empirical Fisher per component: each layer's attention output and output, and CLS.

    The encoder is first fine-tuned briefly on the sample with a fresh head (as Vu et al. do:
    TaskEmb comes from a task-tuned model); then the summed task loss is back-propagated batch by
    batch and the squared gradients of each activation are averaged over real tokens.

    Unlabelled data has its labels sampled from the model's predictions. With ``label_donor`` (a
    labelled task of the same label space, ``workers.selection.donor``) the head is first trained
    on the donor's rows, so the predictions are a trained model's; without one they come from an
    untrained head.
    """
    examples = subsample(task.train, config.max_examples, config.seed)
    device = pick_device(config.device)
    model = TaskModel(copy.deepcopy(encoder).to(device))
    labelled = _is_labelled(task, examples)
    sample = TaskData(task.spec, {"train": examples})
    donor = None if labelled or config.train_epochs <= 0 else label_donor  # it trains a head
    if config.train_epochs > 0 and (labelled or donor is not None):
        trained_on = sample if labelled else _donor_sample(task, donor, config)
        _train_briefly(model, trained_on, tokenizer, config, progress)
    else:
        model.add_head(task.spec)
    components = fisher_diagonal(
        model,
        sample,
        tokenizer,
        config,
        sampled_labels=not labelled or config.labels == "sampled",
        progress=progress,
    )
    settings = {**config.to_dict(), "method": "taskemb", "labelled": labelled}
    if donor is not None:
        settings["label_donor"] = donor.name
    return TaskEmbedding(task.name, "taskemb", ref, components, len(examples), settings)


def _donor_sample(task: TaskData, donor: TaskData, config: EmbeddingConfig) -> TaskData:
    """The donor's rows under the target's spec, so the head they train is the target's."""
    return TaskData(task.spec, {"train": subsample(donor.train, config.max_examples, config.seed)})


def fisher_diagonal(
    model: TaskModel,
    task: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    config: EmbeddingConfig,
    *,
    sampled_labels: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, np.ndarray]:
    """Average squared gradient of the summed loss w.r.t. each tracked activation, per unit."""
    set_seed(config.seed)
    features = encode(task.train, task.spec, tokenizer, config.features)
    device = next(model.parameters()).device
    model.eval()  # no dropout: the same inputs give the same vector
    tracker = ActivationGradients(model.encoder)
    generator = torch.Generator().manual_seed(config.seed)
    batches = list(length_grouped_batches(features, config.batch_size, shuffle=False))
    with tracker, torch.enable_grad(), _attention_for_backward(model.encoder, device, config):
        for step, indices in enumerate(batches, 1):
            batch = _to(
                collate([features[i] for i in indices], tokenizer.pad_token_id or 0), device
            )
            tracker.mask = _flat_mask(batch)
            with autocast(device, config.precision):  # backward follows the forward's dtypes
                logits = model.heads[task.name](model.encode(batch), batch).float()
            if sampled_labels:
                batch = _sample_labels(task.spec.type, logits.detach(), batch, generator)
            model.heads[task.name].loss(logits, batch).float().backward()
            if progress:
                progress(f"taskemb:{task.name}", step, len(batches))
    return tracker.averages()


@contextlib.contextmanager
def _attention_for_backward(encoder: nn.Module, device: torch.device, config: EmbeddingConfig):
    """Eager attention while back-propagating in bf16 on a CPU: there SDPA's flash-attention
    backward took a third of the Fisher pass (eager: 5.3 s against 7.2 s for 192 rte examples)
    and some of the brief fine-tune's (6.4 s against 7.4 s); fp32 and forward-only passes are no
    faster eager. Same maths, other rounding."""
    switch = getattr(encoder, "set_attn_implementation", None)  # transformers 5
    before = getattr(encoder.config, "_attn_implementation", None)
    if switch is None or device.type != "cpu" or config.precision != "bf16" or before == "eager":
        yield
        return
    switch("eager")
    try:
        yield
    finally:
        switch(before)


class ActivationGradients:
    """Accumulates squared gradients of each layer's attention output and output, and of CLS.

    Parameters are frozen while tracking so back-propagation computes activation gradients only
    (no weight gradients: the main saving over the reference implementation).
    """

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder
        self.layers = transformer_layers(encoder)
        self.mask: torch.Tensor | None = None  # (batch, seq) of the current batch
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self._handles: list = []
        self._frozen: list[tuple[nn.Parameter, bool]] = []

    def __enter__(self) -> ActivationGradients:
        self._frozen = [(p, p.requires_grad) for p in self.encoder.parameters()]
        for p, _ in self._frozen:
            p.requires_grad_(False)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            self._track(layer.attention.output, f"layer{i}.attention")
            self._track(layer.output, f"layer{i}.output", cls=i == last)
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        for p, requires_grad in self._frozen:
            p.requires_grad_(requires_grad)

    def _track(self, module: nn.Module, name: str, cls: bool = False) -> None:
        def on_forward(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if not hidden.requires_grad:
                # The first tracked output starts the graph: back-propagation stops there,
                # never entering the embeddings or the first layer's self-attention.
                hidden.requires_grad_()
            hidden.register_hook(lambda grad: self._accumulate(name, grad, cls))

        self._handles.append(module.register_forward_hook(on_forward))

    def _accumulate(self, name: str, grad: torch.Tensor, cls: bool) -> None:
        squared = grad.float().pow(2)  # (batch, seq, hidden)
        mask = self.mask.to(squared.dtype).unsqueeze(-1)
        self._add(name, (squared * mask).sum((0, 1)), int(self.mask.sum()))
        if cls:
            real = self.mask[:, 0] > 0
            self._add("cls", squared[real, 0].sum(0), int(real.sum()))

    def _add(self, name: str, value: torch.Tensor, count: int) -> None:
        value = value.detach().double().cpu()
        self.sums[name] = self.sums.get(name, 0) + value
        self.counts[name] = self.counts.get(name, 0) + count

    def averages(self) -> dict[str, np.ndarray]:
        """Per component: summed squared gradients divided by the units they came from."""
        order = sorted(self.sums, key=_component_order)
        return {
            k: (self.sums[k] / max(self.counts[k], 1)).numpy().astype(np.float32) for k in order
        }


def _component_order(name: str) -> tuple[int, int]:
    if name == "cls":
        return (10**6, 0)
    layer, part = name.split(".")
    return (int(layer.removeprefix("layer")), 0 if part == "attention" else 1)


def _train_briefly(model, sample, tokenizer, config, progress) -> None:
    frozen = config.head_training == "head"
    for p in model.encoder.parameters():
        p.requires_grad_(not frozen)
    train = TrainConfig(
        epochs=config.train_epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate * (20 if frozen else 1),  # a lone head learns slowly
        features=config.features,
        device=config.device,
        precision=config.precision,  # bf16 roughly halves this stage on a bf16 CPU
    )
    device = next(model.parameters()).device
    with _attention_for_backward(model.encoder, device, config):
        train_stage(
            model,
            [sample],
            tokenizer,
            train,
            seed=config.seed,
            evaluate_after=False,
            stage=f"taskemb-head:{sample.name}",
            progress=progress,
        )
    for p in model.encoder.parameters():
        p.requires_grad_(True)


def _is_labelled(task: TaskData, examples: list) -> bool:
    if not examples:
        raise ValueError(f"task {task.name!r} has no training rows to embed")
    first = examples[0]
    if task.spec.type is TaskType.EXTRACTIVE_QA:
        return any(ex.answers for ex in examples)
    if task.spec.type is TaskType.SEQUENCE_LABELING:
        return first.tags is not None
    return first.label is not None


def _sample_labels(task_type: TaskType, logits: torch.Tensor, batch: dict, generator) -> dict:
    """Labels drawn from the model's predictive distribution (for unlabelled data)."""
    batch = dict(batch)
    logits = logits.float().cpu()
    if task_type is TaskType.REGRESSION:
        batch["labels"] = (logits + torch.randn(logits.shape, generator=generator)).to(
            batch["input_ids"].device
        )
    elif task_type is TaskType.EXTRACTIVE_QA:
        for k, key in enumerate(("start_positions", "end_positions")):
            probs = F.softmax(logits[..., k], -1)
            batch[key] = (
                torch.multinomial(probs, 1, generator=generator)
                .squeeze(-1)
                .to(batch["input_ids"].device)
            )
    elif task_type is TaskType.SEQUENCE_LABELING:
        probs = F.softmax(logits, -1)  # (batch, seq, tags)
        sampled = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(
            probs.shape[:2]
        )
        first_subword = batch["word_index"].cpu() >= 0
        batch["labels"] = torch.where(first_subword, sampled, IGNORE_INDEX).to(
            batch["input_ids"].device
        )
    else:
        probs = F.softmax(logits, -1)
        batch["labels"] = (
            torch.multinomial(probs, 1, generator=generator)
            .squeeze(-1)
            .to(batch["input_ids"].device)
        )
    return batch


def _flat_mask(batch: dict) -> torch.Tensor:
    """Attention mask as (sequences, seq): multiple-choice batches flatten their choices."""
    mask = batch["attention_mask"]
    return mask.flatten(0, 1) if mask.dim() == 3 else mask


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}
