"""Task heads over a shared encoder, and the model that routes a batch to its task's head.

Heads are kept apart from the encoder (not ``AutoModelFor...``) so a transfer can keep the encoder
and drop the source head, and multi-task training can share one encoder across many heads. A
head's saved config therefore never leaks into another task (no stale ``problem_type``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from workers.data.schema import TaskSpec, TaskType
from workers.features import IGNORE_INDEX


class ClassificationHead(nn.Module):
    """Sentence or sentence-pair classification on the [CLS] representation."""

    def __init__(self, hidden: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.out(self.dropout(hidden[:, 0]))  # (batch, labels)

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.cross_entropy(logits, batch["labels"], reduction="sum")


class RegressionHead(ClassificationHead):
    """One real number per example from [CLS]; mean squared error."""

    def __init__(self, hidden: int, dropout: float = 0.1) -> None:
        super().__init__(hidden, 1, dropout)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return super().forward(hidden, batch).squeeze(-1)  # (batch,)

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.mse_loss(logits, batch["labels"].to(logits.dtype), reduction="sum")


class MultipleChoiceHead(nn.Module):
    """One score per (context, choice) pair from [CLS]; softmax over the choices."""

    def __init__(self, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        scores = self.out(self.dropout(hidden[:, 0])).squeeze(-1)  # (batch * choices,)
        scores = scores.view(batch["choice_mask"].shape)  # (batch, choices)
        return scores.masked_fill(batch["choice_mask"] == 0, torch.finfo(scores.dtype).min)

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.cross_entropy(logits, batch["labels"], reduction="sum")


class SpanHead(nn.Module):
    """Start and end logits per token for extractive QA."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.out = nn.Linear(hidden, 2)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        logits = self.out(hidden)  # (batch, seq, 2)
        return logits.masked_fill(batch["attention_mask"].unsqueeze(-1) == 0, -1e4)

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        start = F.cross_entropy(logits[..., 0], batch["start_positions"], reduction="sum")
        end = F.cross_entropy(logits[..., 1], batch["end_positions"], reduction="sum")
        return (start + end) / 2


class TokenHead(nn.Module):
    """A tag per token; only the first sub-word of each word carries a label."""

    def __init__(self, hidden: int, num_tags: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_tags)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.out(self.dropout(hidden))  # (batch, seq, tags)

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        return F.cross_entropy(
            logits.flatten(0, 1),
            batch["labels"].flatten(),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )


def build_head(spec: TaskSpec, hidden: int) -> nn.Module:
    """A freshly initialised head for ``spec``."""
    match spec.type:
        case TaskType.CLASSIFICATION:
            return ClassificationHead(hidden, spec.num_labels)
        case TaskType.REGRESSION:
            return RegressionHead(hidden)
        case TaskType.MULTIPLE_CHOICE:
            return MultipleChoiceHead(hidden)
        case TaskType.EXTRACTIVE_QA:
            return SpanHead(hidden)
        case TaskType.SEQUENCE_LABELING:
            return TokenHead(hidden, spec.num_labels)
    raise ValueError(f"no head for task type {spec.type!r}")


def loss_units(batch: dict) -> int:
    """How many terms the summed loss of ``batch`` has (examples, or labelled tokens)."""
    labels = batch.get("labels")
    if labels is not None and labels.dim() == 2 and "choice_mask" not in batch:
        return max(int((labels != IGNORE_INDEX).sum()), 1)
    return int(batch["input_ids"].shape[0])


class TaskModel(nn.Module):
    """A shared encoder plus one head per task name."""

    def __init__(self, encoder: nn.Module, specs: list[TaskSpec] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict()
        self.specs: dict[str, TaskSpec] = {}
        for spec in specs or []:
            self.add_head(spec)

    @property
    def hidden_size(self) -> int:
        return int(self.encoder.config.hidden_size)

    def add_head(self, spec: TaskSpec) -> None:
        """Attach a fresh head for ``spec`` (replacing one of the same name)."""
        head = build_head(spec, self.hidden_size)
        device = next(self.encoder.parameters()).device
        self.heads[spec.name] = head.to(device)
        self.specs[spec.name] = spec

    def drop_heads(self) -> None:
        """Discard every head: the encoder alone carries over to the next stage."""
        self.heads = nn.ModuleDict()
        self.specs = {}

    def encode(self, batch: dict) -> torch.Tensor:
        """Final-layer token representations, (batch[*choices], seq, hidden)."""
        inputs = {
            k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch
        }
        if "choice_mask" in batch:  # (batch, choices, seq) -> (batch * choices, seq)
            inputs = {k: v.flatten(0, 1) for k, v in inputs.items()}
        return self.encoder(**inputs).last_hidden_state

    def forward(self, batch: dict, task: str) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(summed loss or None when the batch has no labels, logits)."""
        head = self.heads[task]
        logits = head(self.encode(batch), batch)
        has_labels = "labels" in batch or "start_positions" in batch
        return (head.loss(logits, batch) if has_labels else None), logits
