"""Loaders: shared task folders, loose JSONL/CSV/TSV files, saved HF datasets, real tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workers.data.loaders import (
    iter_task_dirs,
    load_files,
    load_hf_dataset,
    load_task_dir,
    resolve_task_path,
    spec_from_manifest,
)
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
from workers.data.validation import Problem, TaskValidationError

NLI = {"name": "nli", "type": "classification", "labels": ["yes", "no"], "metric": "accuracy"}
NER = {"name": "ner", "type": "sequence_labeling", "labels": ["O", "B-PER", "I-PER"]}
NER["metric"] = "seqeval_f1"


def rows(n: int) -> list[dict[str, Any]]:
    """``n`` valid NLI rows with alternating labels."""
    return [
        {"id": f"r{i}", "text": f"premise {i}", "label": ("yes", "no")[i % 2]} for i in range(n)
    ]


def write_task(
    root: Path, manifest: dict[str, Any], splits: dict[str, list[dict[str, Any] | str]]
) -> Path:
    """A task folder; a ``str`` row is written verbatim (to make broken lines)."""
    folder = root / manifest.get("name", "task")
    folder.mkdir(parents=True)
    (folder / "task.json").write_text(json.dumps(manifest))
    for split, lines in splits.items():
        text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in lines)
        (folder / f"{split}.jsonl").write_text(text)
    return folder


def problems_of(call: Any, *args: Any, **kwargs: Any) -> list[Problem]:
    with pytest.raises(TaskValidationError) as caught:
        call(*args, **kwargs)
    return caught.value.problems


def where(problems: list[Problem]) -> list[tuple[str, int | None, str | None]]:
    """(file name, row, field) of each problem."""
    return [(Path(p.file).name, p.row, p.field) for p in problems]


# ---------------------------------------------------------------------------------------------
# Task folders


def test_task_folder_loads_typed_splits(tmp_path: Path) -> None:
    folder = write_task(tmp_path, NLI, {"train": rows(4), "validation": rows(2)})
    task = load_task_dir(folder)
    assert task.spec == TaskSpec("nli", TaskType.CLASSIFICATION, Metric.ACCURACY, ("yes", "no"))
    assert list(task.splits) == ["train", "validation"]
    assert task.train[1] == ClassificationExample("r1", "premise 1", None, "no")
    assert len(task.validation) == 2


def test_broken_json_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    lines: list[dict[str, Any] | str] = [*rows(2), "", '{"id": "r9", "text": ', *rows(1)]
    folder = write_task(tmp_path, NLI, {"train": lines})
    [problem] = problems_of(load_task_dir, folder)
    assert where([problem]) == [("train.jsonl", 4, None)]  # the blank line 3 still counts
    assert problem.message.startswith("invalid JSON:")


def test_one_error_lists_problems_from_every_file(tmp_path: Path) -> None:
    train = [*rows(2), {"id": "x", "text": "", "label": "maybe"}]
    validation = [*rows(1), {"id": "y", "label": "no"}]
    folder = write_task(tmp_path, NLI, {"train": train, "validation": validation})
    problems = problems_of(load_task_dir, folder)
    assert where(problems) == [
        ("train.jsonl", 3, "text"),
        ("train.jsonl", 3, "label"),
        ("validation.jsonl", 2, "text"),
    ]
    assert problems[1].message == "unknown label 'maybe' (expected one of 'yes', 'no')"
    assert problems[2].message == "missing text"


def test_problems_are_capped_at_max_problems(tmp_path: Path) -> None:
    bad = [{"id": str(i), "text": "t", "label": "maybe"} for i in range(10)]
    folder = write_task(tmp_path, NLI, {"train": bad})
    problems = problems_of(load_task_dir, folder, max_problems=4)
    assert len(problems) == 5
    assert problems[-1].message == "6 more problems not shown (max_problems=4)"


@pytest.mark.parametrize(
    ("kind", "row", "message"),
    [
        ("unknown label", {"id": "a", "text": "t", "label": "maybe"}, "unknown label 'maybe'"),
        ("missing text", {"id": "a", "label": "yes"}, "missing text"),
    ],
)
def test_bad_classification_row(tmp_path: Path, kind: str, row: dict, message: str) -> None:
    folder = write_task(tmp_path, NLI, {"train": [*rows(2), row]})
    [problem] = problems_of(load_task_dir, folder)
    assert problem.row == 3 and message in problem.message, kind


def test_answer_text_not_at_its_start_is_reported(tmp_path: Path) -> None:
    manifest = {"name": "qa", "type": "extractive_qa", "metric": "squad"}
    good = {"id": "a", "context": "Paris is in France.", "question": "Where?"}
    bad = {**good, "id": "b", "answers": [{"text": "France", "start": 0}]}
    folder = write_task(tmp_path, manifest, {"train": [{**good, "answers": []}, bad]})
    [problem] = problems_of(load_task_dir, folder)
    assert where([problem]) == [("train.jsonl", 2, "answers[0]")]
    assert problem.message.startswith("answer text not at its start offset")


def test_tokens_and_tags_of_different_lengths_are_reported(tmp_path: Path) -> None:
    good = {"id": "a", "tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}
    bad = {"id": "b", "tokens": ["Ann", "Lee", "ran"], "tags": ["B-PER", "O"]}
    folder = write_task(tmp_path, NER, {"train": [good, bad]})
    [problem] = problems_of(load_task_dir, folder)
    assert (problem.row, problem.field, problem.message) == (2, "tags", "3 tokens but 2 tags")


def test_empty_file_is_reported(tmp_path: Path) -> None:
    folder = write_task(tmp_path, NLI, {"train": rows(2), "validation": []})
    assert problems_of(load_task_dir, folder) == [
        Problem(str(folder / "validation.jsonl"), None, None, "file has no rows")
    ]


def test_single_class_label_set_and_single_class_train_are_reported(tmp_path: Path) -> None:
    one_label = write_task(tmp_path / "a", {**NLI, "labels": ["yes"]}, {"train": rows(2)})
    [problem] = problems_of(load_task_dir, one_label)
    assert (problem.field, problem.message) == (
        "labels",
        "a classification task needs at least 2 different labels, got 1",
    )
    same = [{"id": str(i), "text": "t", "label": "yes"} for i in range(3)]
    one_class = write_task(tmp_path / "b", NLI, {"train": same})
    [problem] = problems_of(load_task_dir, one_class)
    assert problem.message == "all 3 labelled rows have label 'yes'; a model needs 2 or more"


def test_metric_that_does_not_fit_the_type_is_reported(tmp_path: Path) -> None:
    folder = write_task(tmp_path, {**NLI, "metric": "pearson"}, {"train": rows(2)})
    [problem] = problems_of(load_task_dir, folder)
    assert where([problem]) == [("task.json", None, "metric")]
    assert problem.message == (
        "metric 'pearson' does not fit type 'classification' "
        "(allowed: 'accuracy', 'f1', 'macro_f1', 'matthews')"
    )


def test_missing_folder_manifest_or_train_is_a_clear_problem(tmp_path: Path) -> None:
    assert problems_of(load_task_dir, tmp_path / "nope")[0].message == "task folder not found"
    (tmp_path / "empty").mkdir()
    assert (
        problems_of(load_task_dir, tmp_path / "empty")[0].message
        == "no task.json in the task folder"
    )
    folder = write_task(tmp_path, NLI, {"validation": rows(2)})
    [problem] = problems_of(load_task_dir, folder)
    assert problem.message == "missing train.jsonl (a task needs training rows)"


def test_manifest_counts_and_declared_splits_are_checked(tmp_path: Path) -> None:
    manifest = {**NLI, "splits": {"train": 3, "test": 2}}
    folder = write_task(tmp_path, manifest, {"train": rows(2)})
    assert [p.message for p in problems_of(load_task_dir, folder)] == [
        "task.json declares 3 train rows but the file has 2",
        "task.json declares 2 test rows but test.jsonl is missing",
    ]


def test_splits_argument_and_unlabelled_rows(tmp_path: Path) -> None:
    unlabelled = [{"id": "u", "text": "no label yet"}]
    folder = write_task(tmp_path, NLI, {"train": rows(2), "test": unlabelled})
    assert list(load_task_dir(folder, splits=("train",)).splits) == ["train"]
    assert problems_of(load_task_dir, folder)[0].message == "missing label"
    task = load_task_dir(folder, allow_unlabelled=True)
    assert task.splits["test"][0].label is None


def test_spec_from_manifest_validates() -> None:
    assert spec_from_manifest(NLI, "m").labels == ("yes", "no")
    with pytest.raises(TaskValidationError, match="unknown task type 'ranking'"):
        spec_from_manifest({**NLI, "type": "ranking"}, "m")


# ---------------------------------------------------------------------------------------------
# Loose files


def test_csv_with_field_mapping_loads(tmp_path: Path) -> None:
    csv_file = tmp_path / "train.csv"
    csv_file.write_text('sentence1,sentence2,gold\n"A, b",c,yes\n"multi\nline",d,no\n')
    manifest = {**NLI, "fields": {"text": "sentence1", "text_pair": "sentence2", "label": "gold"}}
    task = load_files(manifest, {"train": csv_file})
    assert task.train == [
        ClassificationExample("train-0", "A, b", "c", "yes"),
        ClassificationExample("train-1", "multi\nline", "d", "no"),
    ]


def test_tsv_lists_are_json_cells_and_quotes_are_literal(tmp_path: Path) -> None:
    tsv_file = tmp_path / "train.tsv"
    tsv_file.write_text(
        'id\ttokens\ttags\ns1\t["\\"Ann", "ran"]\t["B-PER", "O"]\ns2\t["Lee"]\t["B-PER"]\n'
    )
    task = load_files(NER, {"train": tsv_file})
    assert task.train[0] == TaggingExample("s1", ('"Ann', "ran"), ("B-PER", "O"))


def test_csv_numbers_become_regression_and_choice_labels(tmp_path: Path) -> None:
    sts = tmp_path / "sts.csv"
    sts.write_text("text,text_pair,label\na,b,3.5\nc,d,1\n")
    task = load_files({"name": "sts", "type": "regression", "metric": "pearson"}, {"train": sts})
    assert task.train[0] == RegressionExample("train-0", "a", "b", 3.5)
    mc = tmp_path / "mc.csv"
    mc.write_text('question,choices,label\nSky?,"[""blue"", ""red""]",1\n,"[""a"", ""b""]",0\n')
    task = load_files({"name": "mc", "type": "multiple_choice"}, {"train": mc})
    assert task.train[0] == MultipleChoiceExample("train-0", "", "Sky?", ("blue", "red"), 1)


def test_csv_problems_carry_the_file_line_number(tmp_path: Path) -> None:
    csv_file = tmp_path / "train.csv"
    # Line 1 header, line 2 good, lines 3-4 one quoted two-line cell, line 5 bad, line 6 blank.
    csv_file.write_text('text,label\ngood,yes\n"two\nlines",no\nbad,maybe\n\nshort\n')
    problems = problems_of(load_files, NLI, {"train": csv_file})
    assert where(problems) == [("train.csv", 5, "label"), ("train.csv", 7, None)]
    assert problems[1].message == "row has 1 cells but the header has 2"


def test_csv_bad_json_cell_and_missing_column(tmp_path: Path) -> None:
    mc = tmp_path / "mc.csv"
    mc.write_text('choices,label\n"[a,b]",1\n')
    [problem] = problems_of(load_files, {"name": "mc", "type": "multiple_choice"}, {"train": mc})
    assert where([problem]) == [("mc.csv", 2, "choices")]
    assert problem.message.startswith("cell is not valid JSON")
    plain = tmp_path / "plain.csv"
    plain.write_text("sentence,label\nhi,yes\n")
    [problem] = problems_of(load_files, {**NLI, "fields": {"text": "text1"}}, {"train": plain})
    assert problem.message == "no column 'text1' for text (columns: label, sentence)"


def test_empty_and_header_only_csv(tmp_path: Path) -> None:
    empty, header_only = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header_only.write_text("text,label\n")
    problems = problems_of(load_files, NLI, {"train": empty, "validation": header_only})
    assert [p.message for p in problems] == [
        "file is empty (a header row is required)",
        "file has no rows",
    ]


def test_files_with_manifest_path_jsonl_and_bad_extension(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(NLI))
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows(2)))
    assert len(load_files(manifest, {"train": train}).train) == 2
    [problem] = problems_of(load_files, manifest, {"train": train, "test": tmp_path / "t.txt"})
    assert problem.message == "file not found"
    (tmp_path / "t.txt").write_text("x")
    [problem] = problems_of(load_files, manifest, {"train": train, "test": tmp_path / "t.txt"})
    assert problem.message == "unsupported file type '.txt' (use .jsonl, .csv or .tsv)"


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets (saved to disk: no network)


def test_hf_dataset_from_disk_maps_columns_and_class_labels(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
        }
    )
    data = {"sentence": ["bad", "good", "fine"], "label": [0, 1, 1]}
    test = {"sentence": ["hidden"], "label": [-1]}
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(data, features=features),
            "test": datasets.Dataset.from_dict(test, features=features),
        }
    ).save_to_disk(tmp_path / "sst")
    manifest = {"name": "sst", "type": "classification", "fields": {"text": "sentence"}}
    task = load_hf_dataset(str(tmp_path / "sst"), manifest=manifest, allow_unlabelled=True)
    assert task.spec.labels == ("negative", "positive")  # taken from the ClassLabel
    assert task.train[1] == ClassificationExample("train-1", "good", None, "positive")
    assert task.splits["test"][0].label is None  # -1 is "no label"
    [problem] = problems_of(load_hf_dataset, str(tmp_path / "sst"), manifest=manifest)
    assert (problem.file, problem.row, problem.message) == (
        f"{tmp_path / 'sst'}[test]",
        1,
        "missing label",
    )


def test_hf_dataset_tags_answers_and_split_map(tmp_path: Path) -> None:
    import datasets

    tags = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER"])),
        }
    )
    ner = datasets.Dataset.from_dict({"tokens": [["Ann", "ran"]], "ner": [[1, 0]]}, features=tags)
    ner.save_to_disk(tmp_path / "ner")
    manifest = {
        "name": "ner",
        "type": "sequence_labeling",
        "metric": "seqeval_f1",
        "fields": {"tags": "ner"},
    }
    task = load_hf_dataset(str(tmp_path / "ner"), manifest=manifest)
    assert task.train == [TaggingExample("train-0", ("Ann", "ran"), ("B-PER", "O"))]

    squad = {
        "id": ["q1"],
        "context": ["Paris is in France."],
        "question": ["Where?"],
        "answers": [{"text": ["France"], "answer_start": [12]}],
    }
    datasets.DatasetDict({"dev": datasets.Dataset.from_dict(squad)}).save_to_disk(tmp_path / "qa")
    manifest = {"name": "qa", "type": "extractive_qa", "metric": "squad"}
    task = load_hf_dataset(str(tmp_path / "qa"), manifest=manifest, split_map={"train": "dev"})
    assert task.train == [QAExample("q1", "Paris is in France.", "Where?", (Answer("France", 12),))]
    [problem] = problems_of(load_hf_dataset, str(tmp_path / "qa"), manifest=manifest)
    assert problem.message == "no train split (dataset splits: dev); pass split_map"


# ---------------------------------------------------------------------------------------------
# Finding tasks


def test_resolve_task_path(tmp_path: Path) -> None:
    folder = write_task(tmp_path, NLI, {"train": rows(2)})
    assert resolve_task_path(str(folder), tmp_path / "elsewhere") == folder
    assert resolve_task_path("nli", tmp_path) == tmp_path / "nli"
    [problem] = problems_of(resolve_task_path, "missing", tmp_path)
    assert str(tmp_path / "missing") in problem.message and "'missing'" in problem.message
    (tmp_path / "sub").mkdir()
    with pytest.raises(TaskValidationError):
        resolve_task_path("../nli", tmp_path / "sub")  # never climbs out of the root


def test_iter_task_dirs(tmp_path: Path) -> None:
    for name in ("b_task", "a_task"):
        write_task(tmp_path, {**NLI, "name": name}, {"train": rows(2)})
    (tmp_path / "not_a_task").mkdir()
    assert iter_task_dirs(tmp_path) == [tmp_path / "a_task", tmp_path / "b_task"]
    assert iter_task_dirs(tmp_path / "a_task") == [tmp_path / "a_task"]
    with pytest.raises(TaskValidationError):
        iter_task_dirs(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------
# The real shared tasks


@pytest.mark.integration
def test_every_shared_task_validates(tasks_root: Path) -> None:
    folders = iter_task_dirs(tasks_root)
    assert folders, f"no tasks under {tasks_root}"
    failures = {}
    for folder in folders:
        try:
            task = load_task_dir(folder)
        except TaskValidationError as exc:
            failures[folder.name] = str(exc)
            continue
        assert task.name == folder.name
        assert task.train and task.validation, folder.name
    assert failures == {}
