"""Turning a model's logits into predictions in each metric's format, and scoring them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from workers.data.schema import Example, QAExample, TaggingExample, TaskSpec, TaskType
from workers.features import collate, length_grouped_batches
from workers.heads import TaskModel
from workers.metrics import compute_metric

MAX_ANSWER_TOKENS = 30
N_BEST = 20


@torch.inference_mode()
def predict(
    model: TaskModel,
    spec: TaskSpec,
    examples: Sequence[Example],
    features: Sequence[dict],
    *,
    batch_size: int = 64,
    pad_token_id: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list:
    """One prediction per example: a label, a number, a choice index, an answer text or tags.

    ``progress(batches done, batches)`` is called after each batch."""
    model.eval()
    device = next(model.parameters()).device
    logits_by_feature: dict[int, np.ndarray] = {}
    batches = list(length_grouped_batches(features, batch_size, shuffle=False))
    for done, indices in enumerate(batches, 1):
        batch = collate([features[i] for i in indices], pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        _, logits = model(_without_labels(batch), spec.name)
        for row, i in enumerate(indices):
            logits_by_feature[i] = logits[row].float().cpu().numpy()
        if progress:
            progress(done, len(batches))
    logits = [logits_by_feature[i] for i in range(len(features))]
    return _DECODERS[spec.type](spec, examples, features, logits)


def references(spec: TaskSpec, examples: Sequence[Example]) -> list:
    """Gold answers in the format ``compute_metric`` takes for ``spec.metric``."""
    if spec.type is TaskType.EXTRACTIVE_QA:
        return [[a.text for a in ex.answers] for ex in examples]  # type: ignore[union-attr]
    if spec.type is TaskType.SEQUENCE_LABELING:
        return [list(ex.tags or ()) for ex in examples]  # type: ignore[union-attr]
    return [ex.label for ex in examples]  # type: ignore[union-attr]


def score(spec: TaskSpec, examples: Sequence[Example], predictions: list) -> dict[str, float]:
    """The task's metric (``score`` is the headline number, higher is better)."""
    return compute_metric(spec.metric, predictions, references(spec, examples), labels=spec.labels)


def _without_labels(batch: dict) -> dict:
    return {
        k: v for k, v in batch.items() if k not in ("labels", "start_positions", "end_positions")
    }


def _decode_labels(spec, examples, features, logits) -> list:
    return [spec.labels[int(np.argmax(row))] for row in logits]


def _decode_numbers(spec, examples, features, logits) -> list:
    return [float(row) for row in logits]


def _decode_choices(spec, examples, features, logits) -> list:
    return [int(np.argmax(row)) for row in logits]


def _decode_tags(spec, examples, features, logits) -> list:
    # Words cut off by truncation get the "outside" tag (or the first tag where there is none).
    fallback = "O" if "O" in spec.labels else spec.labels[0]
    predictions = []
    for ex, feature, row in zip(examples, features, logits, strict=True):
        assert isinstance(ex, TaggingExample)
        tags = [fallback] * len(ex.tokens)
        for position, word in enumerate(feature["word_index"]):
            if word >= 0:
                tags[word] = spec.labels[int(np.argmax(row[position]))]
        predictions.append(tags)
    return predictions


def _decode_spans(spec, examples, features, logits) -> list[str]:
    """Best answer text per example over all its windows (SQuAD post-processing)."""
    by_example: dict[int, list[int]] = defaultdict(list)
    for f, feature in enumerate(features):
        by_example[feature["example_index"]].append(f)
    allow_null = any(not ex.answers for ex in examples)  # type: ignore[union-attr]
    answers = []
    for e, ex in enumerate(examples):
        assert isinstance(ex, QAExample)
        answers.append(
            _best_answer(
                ex,
                [features[f] for f in by_example[e]],
                [logits[f] for f in by_example[e]],
                allow_null,
            )
        )
    return answers


def _best_answer(
    ex: QAExample, features: list[dict], logits: list[np.ndarray], allow_null: bool
) -> str:
    best_text, best_score = "", -np.inf
    null_score = np.inf
    for feature, row in zip(features, logits, strict=True):
        start_logits, end_logits = row[:, 0], row[:, 1]
        null_score = min(null_score, start_logits[0] + end_logits[0])
        offsets = feature["offsets"]
        starts = np.argsort(start_logits)[::-1][:N_BEST]
        ends = np.argsort(end_logits)[::-1][:N_BEST]
        for s in starts:
            for e in ends:
                if (
                    s >= len(offsets)
                    or e >= len(offsets)
                    or offsets[s] is None
                    or offsets[e] is None
                ):
                    continue
                if e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                    continue
                candidate = start_logits[s] + end_logits[e]
                if candidate > best_score:
                    best_score = candidate
                    best_text = ex.context[offsets[s][0] : offsets[e][1]]
    if allow_null and null_score > best_score:
        return ""
    return best_text


_DECODERS = {
    TaskType.CLASSIFICATION: _decode_labels,
    TaskType.REGRESSION: _decode_numbers,
    TaskType.MULTIPLE_CHOICE: _decode_choices,
    TaskType.EXTRACTIVE_QA: _decode_spans,
    TaskType.SEQUENCE_LABELING: _decode_tags,
}
