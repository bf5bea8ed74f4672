"""Task metrics on one scale: every ``"score"`` is "higher is better", roughly 0..100.

Percentages (accuracy, F1s, exact match) are ×100 and correlations (Pearson, Spearman, Matthews)
are ×100, so scores of different tasks can sit side by side in one table. Every component in a
result dict uses the same scale as its ``"score"``.

scikit-learn, scipy and seqeval are imported inside the metric functions: the service imports
this module to validate task specs, and that should not pay a second of library import time.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

from workers.data.schema import Metric

Scores = dict[str, float]


def compute_metric(
    metric: Metric | str,
    predictions: Sequence[Any],
    references: Sequence[Any],
    *,
    labels: Sequence[str] = (),
) -> Scores:
    """Score ``predictions`` against ``references``; ``"score"`` is the headline number."""
    metric = Metric(metric)
    predictions, references = list(predictions), list(references)
    if not references:
        raise ValueError(f"cannot compute {metric.value}: no examples (empty references)")
    if len(predictions) != len(references):
        raise ValueError(
            f"cannot compute {metric.value}: {len(predictions)} predictions "
            f"for {len(references)} references"
        )
    return _METRICS[metric](predictions, references, tuple(labels))


def higher_is_better(metric: Metric | str) -> bool:
    """Whether a larger score is better; true for every metric here (kept for callers' clarity)."""
    Metric(metric)  # refuse unknown names
    return True


# --- classification --------------------------------------------------------------------------


def _as_labels(values: list[Any], labels: tuple[str, ...]) -> list[Any]:
    """Map integer predictions to ``labels[i]`` when a label set is given (ints are indices)."""
    if not labels:
        return values
    return [labels[v] if isinstance(v, Integral) and not isinstance(v, bool) else v for v in values]


def _accuracy(predictions: list[Any], references: list[Any], labels: tuple[str, ...]) -> Scores:
    preds, refs = _as_labels(predictions, labels), _as_labels(references, labels)
    accuracy = 100.0 * sum(p == r for p, r in zip(preds, refs, strict=True)) / len(refs)
    return {"score": accuracy, "accuracy": accuracy}


def _binary_f1(predictions: list[Any], references: list[Any], labels: tuple[str, ...]) -> Scores:
    from sklearn.metrics import precision_recall_fscore_support

    if len(labels) < 2:
        raise ValueError("f1 needs the task's labels: the positive class is labels[1]")
    # labels=[positive] scores that class alone, so a stray third label does not raise as
    # average="binary" would; zero_division=0 gives 0 (not a warning) when it never occurs.
    precision, recall, f1, _ = precision_recall_fscore_support(
        _as_labels(references, labels),
        _as_labels(predictions, labels),
        labels=[labels[1]],
        average=None,
        zero_division=0,
    )
    f1_value = 100.0 * float(f1[0])
    return {
        "score": f1_value,
        "precision": 100.0 * float(precision[0]),
        "recall": 100.0 * float(recall[0]),
        "f1": f1_value,
    }


def _macro_f1(predictions: list[Any], references: list[Any], labels: tuple[str, ...]) -> Scores:
    from sklearn.metrics import f1_score

    preds, refs = _as_labels(predictions, labels), _as_labels(references, labels)
    # Over the full label set when known, so a class the model never predicts counts as F1 = 0.
    macro = 100.0 * float(
        f1_score(refs, preds, labels=list(labels) or None, average="macro", zero_division=0)
    )
    return {"score": macro, "macro_f1": macro}


def _matthews(predictions: list[Any], references: list[Any], labels: tuple[str, ...]) -> Scores:
    from sklearn.metrics import matthews_corrcoef

    preds, refs = _as_labels(predictions, labels), _as_labels(references, labels)
    mcc = 100.0 * float(matthews_corrcoef(refs, preds))  # sklearn gives 0.0 for constant input
    return {"score": mcc, "matthews": mcc}


# --- regression ------------------------------------------------------------------------------


def _correlations(predictions: list[Any], references: list[Any]) -> Scores:
    """Pearson and Spearman ×100 under the keys ``pearson`` and ``spearman``."""
    from scipy.stats import pearsonr, spearmanr

    preds = [float(p) for p in predictions]
    refs = [float(r) for r in references]
    if not all(math.isfinite(v) for v in preds + refs):
        raise ValueError("pearson/spearman: predictions and references must be finite numbers")
    # A constant vector has zero variance, so the correlation is undefined (scipy returns NaN
    # with a warning). A model that predicts one value for everything carries no ranking signal,
    # so it scores 0.0, like sklearn's Matthews, instead of a NaN that would poison averages.
    if len(set(preds)) < 2 or len(set(refs)) < 2:
        return {"pearson": 0.0, "spearman": 0.0}
    return {
        "pearson": 100.0 * float(pearsonr(preds, refs)[0]),
        "spearman": 100.0 * float(spearmanr(preds, refs)[0]),
    }


def _pearson(predictions: list[Any], references: list[Any], labels: tuple[str, ...]) -> Scores:
    scores = _correlations(predictions, references)
    return {"score": scores["pearson"], **scores}


def _spearman(predictions: list[Any], references: list[Any], labels: tuple[str, ...]) -> Scores:
    scores = _correlations(predictions, references)
    return {"score": scores["spearman"], **scores}


# --- extractive QA ---------------------------------------------------------------------------
# Hand-written after the official SQuAD v2.0 evaluation script rather than `evaluate.load("squad")`:
# evaluate fetches its metric scripts from the Hugging Face Hub at run time, which fails offline
# (HF_HUB_OFFLINE=1) and in sandboxed workers. Behaviour matches the official script.

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _squad_f1(gold: str, prediction: str) -> float:
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(prediction).split()
    if not gold_tokens or not pred_tokens:
        # Unanswerable gold or empty prediction: 1 only if both are empty.
        return float(gold_tokens == pred_tokens)
    common = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _squad(predictions: list[Any], references: list[Any], labels: tuple[str, ...]) -> Scores:
    exact_total = f1_total = 0.0
    for prediction, golds in zip(predictions, references, strict=True):
        golds = [golds] if isinstance(golds, str) else list(golds)
        # As in SQuAD v2: golds that normalise to nothing are dropped; none left = unanswerable,
        # scored against the empty answer.
        golds = [g for g in golds if normalize_answer(g)] or [""]
        predicted = normalize_answer(prediction)
        exact_total += max(float(normalize_answer(g) == predicted) for g in golds)
        f1_total += max(_squad_f1(g, prediction) for g in golds)
    exact, f1 = 100.0 * exact_total / len(references), 100.0 * f1_total / len(references)
    return {"score": f1, "exact_match": exact, "f1": f1}


# --- sequence labelling ----------------------------------------------------------------------


def _tag_rows(
    predictions: list[Any], references: list[Any]
) -> tuple[list[list[str]], list[list[str]]]:
    """Tag sequences as lists, refusing rows whose lengths differ."""
    preds, refs = [list(p) for p in predictions], [list(r) for r in references]
    for i, (p, r) in enumerate(zip(preds, refs, strict=True)):
        if len(p) != len(r):
            raise ValueError(f"row {i}: {len(p)} predicted tags for {len(r)} reference tags")
    return preds, refs


def _seqeval(predictions: list[Any], references: list[Any], labels: tuple[str, ...]) -> Scores:
    from seqeval.metrics import f1_score, precision_score, recall_score

    preds, refs = _tag_rows(predictions, references)
    # Default (conlleval) mode: entity-level scores, an entity counts only if type and span match.
    scores = {
        "precision": 100.0 * float(precision_score(refs, preds, zero_division=0)),
        "recall": 100.0 * float(recall_score(refs, preds, zero_division=0)),
        "f1": 100.0 * float(f1_score(refs, preds, zero_division=0)),
    }
    return {"score": scores["f1"], **scores}


def _token_accuracy(
    predictions: list[Any], references: list[Any], labels: tuple[str, ...]
) -> Scores:
    preds, refs = _tag_rows(predictions, references)
    flat_preds = [tag for row in preds for tag in row]
    flat_refs = [tag for row in refs for tag in row]  # same length: rows were checked above
    if not flat_refs:
        raise ValueError("cannot compute token_accuracy: every row is empty")
    correct = sum(p == r for p, r in zip(flat_preds, flat_refs, strict=True))
    accuracy = 100.0 * correct / len(flat_refs)
    return {"score": accuracy, "token_accuracy": accuracy}


_METRICS: dict[Metric, Callable[[list[Any], list[Any], tuple[str, ...]], Scores]] = {
    Metric.ACCURACY: _accuracy,
    Metric.F1: _binary_f1,
    Metric.MACRO_F1: _macro_f1,
    Metric.MATTHEWS: _matthews,
    Metric.PEARSON: _pearson,
    Metric.SPEARMAN: _spearman,
    Metric.SQUAD: _squad,
    Metric.SEQEVAL_F1: _seqeval,
    Metric.TOKEN_ACCURACY: _token_accuracy,
}
