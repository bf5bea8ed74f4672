"""Metrics against hand-worked examples; every expected number is derived in a comment."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from workers.data.schema import Metric
from workers.metrics import compute_metric, higher_is_better, normalize_answer

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = ("neg", "pos")


# --- classification --------------------------------------------------------------------------


def test_accuracy_three_of_four() -> None:
    result = compute_metric(Metric.ACCURACY, ["a", "b", "a", "a"], ["a", "b", "b", "a"])
    assert result == {"score": 75.0, "accuracy": 75.0}


def test_accuracy_maps_int_predictions_to_labels() -> None:
    # ints are indices into labels: (neg, pos, pos) vs (neg, pos, neg) → 2/3
    result = compute_metric(Metric.ACCURACY, [0, 1, 1], ["neg", "pos", "neg"], labels=LABELS)
    assert result["score"] == pytest.approx(200 / 3)


BINARY_REFS = ["pos", "pos", "pos", "neg", "neg"]
BINARY_PREDS = ["pos", "pos", "neg", "pos", "pos"]


def test_binary_f1_positive_is_second_label() -> None:
    # positive = "pos": TP = 2, FN = 1, FP = 2 → P = 2/4, R = 2/3, F1 = 2TP / (2TP + FP + FN) = 4/7
    result = compute_metric(Metric.F1, BINARY_PREDS, BINARY_REFS, labels=("neg", "pos"))
    assert result["precision"] == pytest.approx(50.0)
    assert result["recall"] == pytest.approx(200 / 3)
    assert result["f1"] == pytest.approx(400 / 7)
    assert result["score"] == result["f1"]


def test_binary_f1_follows_label_order() -> None:
    # positive = "neg": gold negatives at 3, 4; predicted negative only at 2 → TP = 0 → F1 = 0
    result = compute_metric(Metric.F1, BINARY_PREDS, BINARY_REFS, labels=("pos", "neg"))
    assert result["score"] == 0.0


def test_binary_f1_with_int_labels() -> None:
    preds = [1, 1, 0, 1, 1]
    refs = [1, 1, 1, 0, 0]
    result = compute_metric(Metric.F1, preds, refs, labels=("neg", "pos"))
    assert result["score"] == pytest.approx(400 / 7)


def test_binary_f1_needs_labels() -> None:
    with pytest.raises(ValueError, match="labels"):
        compute_metric(Metric.F1, BINARY_PREDS, BINARY_REFS)


def test_macro_f1() -> None:
    # a: P 1/1, R 1/2 → 2/3;  b: P 1/3, R 1/1 → 1/2;  c: never predicted → 0
    # macro = (2/3 + 1/2 + 0) / 3 = 7/18
    preds, refs = ["a", "b", "b", "b"], ["a", "a", "b", "c"]
    result = compute_metric(Metric.MACRO_F1, preds, refs, labels=("a", "b", "c"))
    assert result["score"] == pytest.approx(700 / 18)
    assert result["macro_f1"] == result["score"]


def test_macro_f1_counts_absent_labels() -> None:
    # "d" appears nowhere but is in the label set: F1 0 → (2/3 + 1/2 + 0 + 0) / 4 = 7/24
    preds, refs = ["a", "b", "b", "b"], ["a", "a", "b", "c"]
    result = compute_metric(Metric.MACRO_F1, preds, refs, labels=("a", "b", "c", "d"))
    assert result["score"] == pytest.approx(700 / 24)


def test_matthews() -> None:
    # TP 1, FN 1, TN 2, FP 0 → (1·2 − 0·1) / √((1+0)(1+1)(2+0)(2+1)) = 2/√12
    result = compute_metric(Metric.MATTHEWS, [1, 0, 0, 0], [1, 1, 0, 0])
    assert result["score"] == pytest.approx(100 * 2 / 12**0.5)
    assert result["matthews"] == result["score"]


def test_matthews_constant_predictions_is_zero() -> None:
    result = compute_metric(Metric.MATTHEWS, ["a", "a", "a"], ["a", "b", "a"])
    assert result["score"] == 0.0


# --- regression ------------------------------------------------------------------------------


def test_pearson_perfect_and_inverse() -> None:
    assert compute_metric(Metric.PEARSON, [1, 2, 3], [2, 4, 6])["score"] == pytest.approx(100.0)
    assert compute_metric(Metric.PEARSON, [3, 2, 1], [2, 4, 6])["score"] == pytest.approx(-100.0)


def test_pearson_hand_value() -> None:
    # deviations (−1, 0, 1) and (−1, 1, 0): cov = 1, var = 2 each → r = 1/2; ranks equal values
    result = compute_metric(Metric.PEARSON, [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert result == pytest.approx({"score": 50.0, "pearson": 50.0, "spearman": 50.0})


def test_spearman_is_rank_based() -> None:
    # monotone but not linear: ranks agree perfectly, Pearson does not
    result = compute_metric(Metric.SPEARMAN, [1, 2, 3, 4], [1, 4, 9, 100])
    assert result["score"] == pytest.approx(100.0)
    assert result["spearman"] == result["score"]
    assert result["pearson"] < 100.0


@pytest.mark.parametrize("metric", [Metric.PEARSON, Metric.SPEARMAN])
def test_constant_predictions_score_zero_without_warning(metric: Metric) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_metric(metric, [0.5, 0.5, 0.5], [1.0, 2.0, 3.0])
    assert result == {"score": 0.0, "pearson": 0.0, "spearman": 0.0}


def test_correlation_refuses_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        compute_metric(Metric.PEARSON, [1.0, float("nan"), 2.0], [1.0, 2.0, 3.0])


# --- extractive QA ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Cat!", "cat"),
        ("  An apple,  a   pear. ", "apple pear"),
        ("theatre", "theatre"),  # articles only as whole words
        ("A", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_squad_exact_after_normalisation() -> None:
    assert compute_metric(Metric.SQUAD, ["The Cat!"], [["cat"]]) == {
        "score": 100.0,
        "exact_match": 100.0,
        "f1": 100.0,
    }


def test_squad_partial_overlap_f1() -> None:
    # tokens (big, red, dog) vs (red, dog, barked): 2 shared → P = R = 2/3 → F1 = 2/3
    result = compute_metric(Metric.SQUAD, ["the big red dog"], [["red dog barked"]])
    assert result["exact_match"] == 0.0
    assert result["f1"] == pytest.approx(200 / 3)


def test_squad_takes_best_gold() -> None:
    result = compute_metric(Metric.SQUAD, ["the big red dog"], [["red dog barked", "big red dog"]])
    assert result == {"score": 100.0, "exact_match": 100.0, "f1": 100.0}


def test_squad_unanswerable() -> None:
    assert compute_metric(Metric.SQUAD, [""], [[]])["score"] == 100.0
    assert compute_metric(Metric.SQUAD, ["Paris"], [[]])["score"] == 0.0
    assert compute_metric(Metric.SQUAD, [""], [["Paris"]])["score"] == 0.0


def test_squad_averages_over_examples() -> None:
    # EM (1, 0, 1, 0) → 50;  F1 (1, 2/3, 1, 0) → (8/3) / 4 = 2/3
    predictions = ["The Cat!", "the big red dog", "", "something"]
    references = [["cat"], ["red dog barked"], [], []]
    result = compute_metric(Metric.SQUAD, predictions, references)
    assert result["exact_match"] == pytest.approx(50.0)
    assert result["f1"] == pytest.approx(200 / 3)
    assert result["score"] == result["f1"]


def test_squad_accepts_a_single_gold_string() -> None:
    assert compute_metric(Metric.SQUAD, ["Paris"], ["paris."])["score"] == 100.0


# --- sequence labelling ----------------------------------------------------------------------

TAG_REFS = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
TAG_PREDS = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-MISC"]]


def test_seqeval_entity_scores() -> None:
    # gold: PER[0:2], LOC[3], ORG[0] (3);  predicted: PER[0:1], LOC[3], ORG[0], MISC[1] (4)
    # correct: LOC, ORG (PER span is cut short) → P = 2/4, R = 2/3, F1 = 4/7
    result = compute_metric(Metric.SEQEVAL_F1, TAG_PREDS, TAG_REFS)
    assert result["precision"] == pytest.approx(50.0)
    assert result["recall"] == pytest.approx(200 / 3)
    assert result["f1"] == pytest.approx(400 / 7)
    assert result["score"] == result["f1"]


def test_seqeval_without_entities_is_zero() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_metric(Metric.SEQEVAL_F1, [["O", "O"]], [["O", "O"]])
    assert result["score"] == 0.0


def test_token_accuracy() -> None:
    # row 1: 3 of 4 tags right, row 2: 1 of 2 → 4/6 over all tokens (not the mean of rows)
    result = compute_metric(Metric.TOKEN_ACCURACY, TAG_PREDS, TAG_REFS)
    assert result["score"] == pytest.approx(200 / 3)
    assert result["token_accuracy"] == result["score"]


@pytest.mark.parametrize("metric", [Metric.SEQEVAL_F1, Metric.TOKEN_ACCURACY])
def test_tag_row_length_mismatch(metric: Metric) -> None:
    with pytest.raises(ValueError, match="row 1"):
        compute_metric(metric, [["O"], ["O", "O"]], [["O"], ["O"]])


def test_token_accuracy_all_rows_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        compute_metric(Metric.TOKEN_ACCURACY, [[], []], [[], []])


# --- common behaviour ------------------------------------------------------------------------

# One small valid input per metric, so a new Metric without an implementation fails here.
SAMPLE_INPUTS = {
    Metric.ACCURACY: (["a", "b"], ["a", "a"]),
    Metric.F1: (["neg", "pos"], ["pos", "pos"]),
    Metric.MACRO_F1: (["neg", "pos"], ["pos", "pos"]),
    Metric.MATTHEWS: (["neg", "pos"], ["pos", "neg"]),
    Metric.PEARSON: ([0.1, 0.9], [0.0, 1.0]),
    Metric.SPEARMAN: ([0.1, 0.9], [0.0, 1.0]),
    Metric.SQUAD: (["x"], [["x"]]),
    Metric.SEQEVAL_F1: ([["B-X"]], [["B-X"]]),
    Metric.TOKEN_ACCURACY: ([["B-X"]], [["B-X"]]),
}


@pytest.mark.parametrize("metric", list(Metric))
def test_every_metric_has_a_score(metric: Metric) -> None:
    predictions, references = SAMPLE_INPUTS[metric]
    result = compute_metric(metric, predictions, references, labels=("neg", "pos"))
    assert isinstance(result["score"], float)
    assert all(isinstance(value, float) for value in result.values())
    assert higher_is_better(metric)


def test_metric_given_by_name() -> None:
    assert compute_metric("accuracy", ["a"], ["a"])["score"] == 100.0


@pytest.mark.parametrize("metric", list(Metric))
def test_empty_inputs_raise(metric: Metric) -> None:
    with pytest.raises(ValueError, match="no examples"):
        compute_metric(metric, [], [], labels=("neg", "pos"))


@pytest.mark.parametrize("metric", list(Metric))
def test_length_mismatch_raises(metric: Metric) -> None:
    predictions, references = SAMPLE_INPUTS[metric]
    with pytest.raises(ValueError, match="predictions for"):
        compute_metric(metric, predictions, references * 2, labels=("neg", "pos"))


def test_unknown_metric_raises() -> None:
    with pytest.raises(ValueError):
        compute_metric("bleu", ["a"], ["a"])
    with pytest.raises(ValueError):
        higher_is_better("bleu")


def test_module_imports_fast_without_torch() -> None:
    code = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "import workers.metrics\n"
        "print(time.perf_counter() - start, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    seconds, torch_loaded = out.stdout.split()
    assert float(seconds) < 1.0
    assert torch_loaded == "False"
