"""Row and manifest validation: each kind of bad data is reported with its line, field and cause."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from workers.data.schema import (
    Answer,
    ClassificationExample,
    Metric,
    MultipleChoiceExample,
    QAExample,
    RegressionExample,
    TaggingExample,
    TaskSpec,
    TaskType,
)
from workers.data.validation import (
    Problem,
    ProblemCollector,
    RowError,
    TaskValidationError,
    check_label_spread,
    parse_rows,
    validate_manifest,
)

SPECS = {
    "classification": TaskSpec("nli", TaskType.CLASSIFICATION, Metric.ACCURACY, ("yes", "no")),
    "regression": TaskSpec("sts", TaskType.REGRESSION, Metric.PEARSON),
    "multiple_choice": TaskSpec("mc", TaskType.MULTIPLE_CHOICE, Metric.ACCURACY),
    "extractive_qa": TaskSpec("qa", TaskType.EXTRACTIVE_QA, Metric.SQUAD),
    "sequence_labeling": TaskSpec(
        "ner", TaskType.SEQUENCE_LABELING, Metric.SEQEVAL_F1, ("O", "B-PER", "I-PER")
    ),
}
GOOD_ROWS: dict[str, dict[str, Any]] = {
    "classification": {"id": "a", "text": "It rains.", "text_pair": "It is wet.", "label": "yes"},
    "regression": {
        "id": "a",
        "text": "A dog runs.",
        "text_pair": "A dog is running.",
        "label": 4.5,
    },
    "multiple_choice": {
        "id": "a",
        "context": "",
        "question": "Sky colour?",
        "choices": ["blue", "red"],
        "label": 0,
    },
    "extractive_qa": {
        "id": "a",
        "context": "Paris is in France.",
        "question": "Where is Paris?",
        "answers": [{"text": "France", "start": 12}],
    },
    "sequence_labeling": {
        "id": "a",
        "tokens": ["Ann", "Lee", "ran"],
        "tags": ["B-PER", "I-PER", "O"],
    },
}


def parse(kind: str, *rows: Any, **kwargs: Any) -> tuple[list, list[Problem]]:
    """Parse rows (numbered from line 1) for one task type; returns (examples, problems)."""
    collector = ProblemCollector()
    examples = parse_rows(
        SPECS[kind], list(enumerate(rows, start=1)), "train.jsonl", collector, **kwargs
    )
    return examples, collector.problems


def with_(kind: str, **changes: Any) -> dict[str, Any]:
    """A good row of ``kind`` with some fields changed (None removes a field)."""
    row = {**GOOD_ROWS[kind], **changes}
    return {k: v for k, v in row.items() if v is not None}


def test_good_rows_become_typed_examples() -> None:
    expected = {
        "classification": ClassificationExample("a", "It rains.", "It is wet.", "yes"),
        "regression": RegressionExample("a", "A dog runs.", "A dog is running.", 4.5),
        "multiple_choice": MultipleChoiceExample("a", "", "Sky colour?", ("blue", "red"), 0),
        "extractive_qa": QAExample(
            "a", "Paris is in France.", "Where is Paris?", (Answer("France", 12),)
        ),
        "sequence_labeling": TaggingExample("a", ("Ann", "Lee", "ran"), ("B-PER", "I-PER", "O")),
    }
    for kind, example in expected.items():
        assert parse(kind, GOOD_ROWS[kind]) == ([example], [])


@pytest.mark.parametrize(
    ("kind", "changes", "field", "message"),
    [
        ("classification", {"text": None}, "text", "missing text"),
        ("classification", {"text": "   "}, "text", "empty text"),
        ("classification", {"text": 7}, "text", "text must be a string, got number"),
        ("classification", {"label": "maybe"}, "label", "unknown label 'maybe' (expected one of"),
        ("classification", {"label": None}, "label", "missing label"),
        ("classification", {"id": None}, "id", "missing id"),
        ("regression", {"label": "high"}, "label", "label must be a number, got string"),
        ("regression", {"label": float("nan")}, "label", "label must be a finite number"),
        ("regression", {"label": True}, "label", "label must be a number, got boolean"),
        ("multiple_choice", {"choices": ["only"]}, "choices", "needs at least 2 choices"),
        ("multiple_choice", {"label": 2}, "label", "label 2 is out of range for 2 choices"),
        ("multiple_choice", {"label": "1"}, "label", "label must be an integer choice index"),
        ("multiple_choice", {"choices": ["a", 1]}, "choices", "array holding a number"),
        ("extractive_qa", {"answers": [{"text": "France", "start": 3}]}, "answers[0]", "not at"),
        ("extractive_qa", {"answers": [{"text": "", "start": 0}]}, "answers[0].text", "empty"),
        ("extractive_qa", {"answers": None}, "answers", "missing answers"),
        ("extractive_qa", {"question": ""}, "question", "empty question"),
        ("sequence_labeling", {"tags": ["B-PER", "O"]}, "tags", "3 tokens but 2 tags"),
        ("sequence_labeling", {"tags": ["B-PER", "B-LOC", "O"]}, "tags", "unknown tag 'B-LOC'"),
        ("sequence_labeling", {"tokens": ["Ann", " ", "ran"]}, "tokens", "token 1 is empty"),
        ("sequence_labeling", {"tokens": [], "tags": []}, "tokens", "no tokens"),
    ],
)
def test_bad_row_is_reported_and_dropped(
    kind: str, changes: dict[str, Any], field: str, message: str
) -> None:
    examples, problems = parse(kind, GOOD_ROWS[kind], with_(kind, **changes))
    assert len(examples) == 1  # the good row survives
    assert [(p.file, p.row, p.field) for p in problems] == [("train.jsonl", 2, field)]
    assert message in problems[0].message


def test_offset_problem_says_where_the_answer_is() -> None:
    _, problems = parse(
        "extractive_qa", with_("extractive_qa", answers=[{"text": "France", "start": 3}])
    )
    assert problems[0].message == (
        "answer text not at its start offset (context there reads 'is is '; it first occurs at 12)"
    )


def test_unreadable_rows_are_problems_without_a_field() -> None:
    try:
        json.loads('{"id": "a", "text": ')
    except json.JSONDecodeError as exc:
        bad_json = exc
    _, problems = parse("classification", bad_json, ["a", "list"], RowError("bad cell", "label"))
    assert [(p.row, p.field) for p in problems] == [(1, None), (2, None), (3, "label")]
    assert problems[0].message.startswith("invalid JSON: Expecting value")
    assert problems[1].message == "row must be a JSON object, got array"
    assert problems[2].message == "bad cell"


def test_no_rows_is_a_file_problem() -> None:
    _, problems = parse("classification")
    assert problems == [Problem("train.jsonl", None, None, "file has no rows")]


def test_unlabelled_rows_are_allowed_only_when_asked() -> None:
    row = with_("classification", label=None)
    assert parse("classification", row)[1][0].message == "missing label"
    assert parse("classification", row, allow_unlabelled=True)[0][0].label is None
    qa, problems = parse(
        "extractive_qa", with_("extractive_qa", answers=None), allow_unlabelled=True
    )
    assert problems == [] and qa[0].answers == ()
    tagged, _ = parse(
        "sequence_labeling", with_("sequence_labeling", tags=None), allow_unlabelled=True
    )
    assert tagged[0].tags is None


def test_duplicate_ids_and_numeric_ids_are_accepted() -> None:
    examples, problems = parse(
        "classification", GOOD_ROWS["classification"], with_("classification", id=7)
    )
    assert problems == [] and [e.id for e in examples] == ["a", "7"]


def test_every_problem_in_a_row_is_reported() -> None:
    _, problems = parse("classification", {"id": "a", "text": "", "label": "maybe"})
    assert [p.field for p in problems] == ["text", "label"]


# ---------------------------------------------------------------------------------------------
# Manifests


def manifest(**changes: Any) -> dict[str, Any]:
    base = {"name": "rte", "type": "classification", "labels": ["yes", "no"], "metric": "accuracy"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def manifest_problems(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    collector = ProblemCollector()
    spec = validate_manifest(data, "task.json", collector)
    assert (spec is None) == bool(collector.problems)
    return [(p.field, p.message) for p in collector.problems]


def test_good_manifest_gives_a_spec() -> None:
    collector = ProblemCollector()
    spec = validate_manifest(manifest(family="nli", splits={"train": 3}), "task.json", collector)
    assert spec == TaskSpec("rte", TaskType.CLASSIFICATION, Metric.ACCURACY, ("yes", "no"), "nli")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"type": "ranking"}, ("type", "unknown task type 'ranking' (expected one of")),
        ({"metric": "squad"}, ("metric", "metric 'squad' does not fit type 'classification'")),
        ({"metric": "bleu"}, ("metric", "unknown metric 'bleu'")),
        ({"labels": ["yes"]}, ("labels", "needs at least 2 different labels, got 1")),
        ({"labels": ["yes", "no", "yes"]}, ("labels", "duplicate labels: 'yes'")),
        ({"labels": None}, ("labels", "needs 'labels'")),
        ({"labels": "yes,no"}, ("labels", "labels must be a list of non-empty strings")),
        ({"labels": ["a", "b", "c"], "metric": "f1"}, ("labels", "metric 'f1' is binary")),
        ({"name": None}, ("name", "missing task name")),
        ({"name": "tasks/rte"}, ("name", "invalid task name 'tasks/rte'")),
        ({"name": "../rte"}, ("name", "invalid task name")),
        ({"name": ".hidden"}, ("name", "invalid task name")),
    ],
)
def test_bad_manifest_is_reported(changes: dict[str, Any], expected: tuple[str, str]) -> None:
    problems = manifest_problems(manifest(**changes))
    assert len(problems) == 1
    assert problems[0][0] == expected[0] and expected[1] in problems[0][1]


def test_sequence_labelling_needs_tags_and_seqeval_needs_span_tags() -> None:
    tagging = manifest(type="sequence_labeling", metric="seqeval_f1", labels=None)
    assert (
        manifest_problems(tagging)[0][1]
        == "a sequence_labeling task needs 'labels' (its label set)"
    )
    pos = manifest(type="sequence_labeling", metric="seqeval_f1", labels=["NOUN", "VERB", "O"])
    assert (
        "needs span tags like 'O', 'B-X', 'I-X'; not 'NOUN', 'VERB'" in manifest_problems(pos)[0][1]
    )
    assert manifest_problems({**pos, "metric": "token_accuracy"}) == []


@pytest.mark.parametrize("name", ["SST-2", "my.task_v2", "_private", "ud_ewt_upos"])
def test_lenient_names_pass(name: str) -> None:
    assert manifest_problems(manifest(name=name)) == []


def test_missing_metric_defaults_to_the_types_usual_one() -> None:
    collector = ProblemCollector()
    data = {"name": "sts", "type": "regression"}
    assert validate_manifest(data, "m", collector).metric is Metric.PEARSON


def test_labels_are_ignored_for_types_without_a_label_set() -> None:
    collector = ProblemCollector()
    data = {"name": "mc", "type": "multiple_choice", "metric": "accuracy", "labels": ["x"]}
    assert validate_manifest(data, "m", collector).labels == ()


def test_not_an_object_is_a_problem() -> None:
    assert manifest_problems(["name"]) == [(None, "manifest must be a JSON object, got array")]


# ---------------------------------------------------------------------------------------------
# Whole splits, collection and the error


def test_single_class_training_labels_are_reported() -> None:
    collector = ProblemCollector()
    rows = [ClassificationExample(str(i), "t", label="yes") for i in range(3)]
    check_label_spread(SPECS["classification"], rows, "train.jsonl", collector)
    assert collector.problems == [
        Problem(
            "train.jsonl",
            None,
            "label",
            "all 3 labelled rows have label 'yes'; a model needs 2 or more",
        )
    ]


def test_collector_keeps_max_problems_and_notes_the_rest() -> None:
    collector = ProblemCollector(max_problems=3)
    for row in range(1, 6):
        collector.add("f.jsonl", row, "text", "empty text")
    with pytest.raises(TaskValidationError) as caught:
        collector.raise_if_any()
    problems = caught.value.problems
    assert [p.row for p in problems] == [1, 2, 3, None]
    assert problems[-1].message == "2 more problems not shown (max_problems=3)"


def test_error_message_is_a_readable_capped_summary() -> None:
    problems = [Problem("train.jsonl", i, "label", "unknown label 'x'") for i in range(1, 26)]
    problems.append(Problem("task.json", None, None, "file has no rows"))
    text = str(TaskValidationError(problems))
    lines = text.splitlines()
    assert lines[0] == "task data has 26 problems:"
    assert lines[1] == "  train.jsonl:1: label: unknown label 'x'"
    assert lines[-1] == "  ... and 6 more (see .problems)"
    assert len(lines) == 22
    assert isinstance(TaskValidationError(problems), ValueError)


def test_error_survives_pickling() -> None:
    error = TaskValidationError([Problem("train.jsonl", 3, "label", "missing label")])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems and str(copy) == str(error)


def test_type_problem_is_not_repeated_as_a_metric_problem() -> None:
    assert manifest_problems({"name": "x", "type": "ranking"}) == [
        (
            "type",
            "unknown task type 'ranking' (expected one of 'classification', 'regression', "
            "'multiple_choice', 'extractive_qa', 'sequence_labeling')",
        )
    ]


def test_problem_to_dict() -> None:
    problem = Problem("task.json", None, "metric", "unknown metric 'bleu'")
    assert problem.to_dict() == {
        "file": "task.json",
        "row": None,
        "field": "metric",
        "message": "unknown metric 'bleu'",
    }
    assert str(problem) == "task.json: metric: unknown metric 'bleu'"
