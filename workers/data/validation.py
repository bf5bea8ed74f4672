"""Validation of task manifests and rows: every problem is collected, located and reported at once.

A user fixing an uploaded task wants the whole list ("line 12: unknown label", "line 40: ...")
rather than one error per attempt, so checks add :class:`Problem` s to a :class:`ProblemCollector`
and the caller raises a single :class:`TaskValidationError` at the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from workers.data.schema import (
    METRICS_BY_TYPE,
    Answer,
    ClassificationExample,
    Example,
    Metric,
    MultipleChoiceExample,
    QAExample,
    RegressionExample,
    TaggingExample,
    TaskSpec,
    TaskType,
)

DEFAULT_MAX_PROBLEMS = 50
_E = TypeVar("_E", TaskType, Metric)
_SUMMARY_LINES = 20  # str(TaskValidationError) shows at most this many problems

# Lenient on purpose: user tasks may use capitals, dots or dashes; what must never get through is an
# empty name or one that walks the file system ("../x", "a/b", ".hidden").
_TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# seqeval scores spans, so its tags must carry a scheme prefix (BIO, IOBES or BILOU) or be "O".
_SPAN_TAG = re.compile(r"^(O|[BIESLU]-.+)$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a task; ``row`` is the 1-based line (None for file-level problems)."""

    file: str
    row: int | None
    field: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.file + (f":{self.row}" if self.row is not None else "")
        parts = [p for p in (where, self.field) if p]
        return ": ".join([*parts, self.message])


class TaskValidationError(ValueError):
    """A task that cannot be used, with every problem found (up to a limit)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self._summary())

    def __reduce__(self) -> tuple[type, tuple[list[Problem]]]:
        # Celery pickles errors between processes; rebuild from the problems, not the summary.
        return type(self), (self.problems,)

    def _summary(self) -> str:
        count = len(self.problems)
        lines = [f"task data has {count} problem{'s' if count != 1 else ''}:"]
        lines += [f"  {p}" for p in self.problems[:_SUMMARY_LINES]]
        if count > _SUMMARY_LINES:
            lines.append(f"  ... and {count - _SUMMARY_LINES} more (see .problems)")
        return "\n".join(lines)


class RowError(ValueError):
    """A raw row that could not be read (bad JSON, a bad CSV cell); ``field`` may name the cell."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        return type(self), (str(self), self.field)


@dataclass
class ProblemCollector:
    """Keeps the first ``max_problems`` problems and counts the rest."""

    max_problems: int = DEFAULT_MAX_PROBLEMS
    problems: list[Problem] = field(default_factory=list)
    dropped: int = 0

    @property
    def count(self) -> int:
        """Every problem seen, kept or not."""
        return len(self.problems) + self.dropped

    def add(self, file: str, row: int | None, field: str | None, message: str) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(file, row, field, message))
        else:
            self.dropped += 1

    def raise_if_any(self) -> None:
        """Raise one :class:`TaskValidationError` holding everything collected so far."""
        if not self.count:
            return
        problems = list(self.problems)
        if self.dropped:
            note = f"{self.dropped} more problems not shown (max_problems={self.max_problems})"
            problems.append(Problem("", None, None, note))
        raise TaskValidationError(problems)


# ---------------------------------------------------------------------------------------------
# Manifest


def validate_manifest(
    manifest: Mapping[str, Any], file: str, collector: ProblemCollector
) -> TaskSpec | None:
    """Check a manifest (name, type, metric, labels) and build its spec; None if it is unusable."""
    if not isinstance(manifest, Mapping):
        message = f"manifest must be a JSON object, got {_json_type(manifest)}"
        collector.add(file, None, None, message)
        return None
    before = collector.count
    name = _check_name(manifest.get("name"), file, collector)
    task_type = _check_type(manifest.get("type"), file, collector)
    metric = _check_metric(manifest.get("metric"), task_type, file, collector)
    labels = _check_labels(manifest.get("labels"), task_type, metric, file, collector)
    if collector.count > before or task_type is None or metric is None:
        return None
    keys = ("family", "title", "domain", "notes")
    extras = {k: manifest[k] for k in keys if isinstance(manifest.get(k), str)}
    return TaskSpec(name=name, type=task_type, metric=metric, labels=labels, **extras)


def _check_name(name: Any, file: str, collector: ProblemCollector) -> str:
    if name is None or name == "":
        collector.add(file, None, "name", "missing task name")
    elif not isinstance(name, str):
        collector.add(file, None, "name", f"name must be a string, got {_json_type(name)}")
    elif not _TASK_NAME.match(name):
        hint = "use letters, digits, '_', '-' or '.', starting with a letter, digit or '_'"
        collector.add(file, None, "name", f"invalid task name {name!r} ({hint})")
    else:
        return name
    return ""


def _check_type(value: Any, file: str, collector: ProblemCollector) -> TaskType | None:
    task_type = _member(TaskType, value)
    if task_type is not None:
        return task_type
    expected = _one_of([t.value for t in TaskType])
    found = "missing task type" if value is None else f"unknown task type {value!r}"
    collector.add(file, None, "type", f"{found} (expected one of {expected})")
    return None


def _check_metric(
    value: Any, task_type: TaskType | None, file: str, collector: ProblemCollector
) -> Metric | None:
    if value is None:
        # Each type's usual metric is listed first; with no valid type there is nothing to pick.
        return METRICS_BY_TYPE[task_type][0] if task_type is not None else None
    metric = _member(Metric, value)
    if metric is None:
        expected = _one_of([m.value for m in Metric])
        message = f"unknown metric {value!r} (expected one of {expected})"
        collector.add(file, None, "metric", message)
        return None
    if task_type is not None and metric not in METRICS_BY_TYPE[task_type]:
        allowed = _one_of([m.value for m in METRICS_BY_TYPE[task_type]])
        message = f"metric '{metric}' does not fit type '{task_type}' (allowed: {allowed})"
        collector.add(file, None, "metric", message)
        return None
    return metric


def _check_labels(
    value: Any,
    task_type: TaskType | None,
    metric: Metric | None,
    file: str,
    collector: ProblemCollector,
) -> tuple[str, ...]:
    if task_type not in (TaskType.CLASSIFICATION, TaskType.SEQUENCE_LABELING):
        return ()  # the format omits labels for the other types; any given are ignored
    if value is None:
        collector.add(file, None, "labels", f"a {task_type} task needs 'labels' (its label set)")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        collector.add(file, None, "labels", "labels must be a list of non-empty strings")
        return ()
    labels = tuple(value)
    for message in _label_set_problems(labels, task_type, metric):
        collector.add(file, None, "labels", message)
    return labels


def _label_set_problems(
    labels: tuple[str, ...], task_type: TaskType, metric: Metric | None
) -> list[str]:
    problems = []
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        problems.append(f"duplicate labels: {_one_of(duplicates)}")
    minimum = 2 if task_type is TaskType.CLASSIFICATION else 1
    if len(set(labels)) < minimum:
        distinct = len(set(labels))
        problems.append(
            f"a {task_type} task needs at least {minimum} different labels, got {distinct}"
        )
    if metric is Metric.F1 and len(labels) != 2:
        count = len(labels)
        problems.append(f"metric 'f1' is binary (positive = second label); got {count} labels")
    bad_tags = [tag for tag in labels if not _SPAN_TAG.match(tag)]
    if metric is Metric.SEQEVAL_F1 and bad_tags:
        problems.append(
            f"metric 'seqeval_f1' needs span tags like 'O', 'B-X', 'I-X'; not {_one_of(bad_tags)}"
            " (use token_accuracy for plain tags)"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class _Context:
    """What every row of one file is checked against."""

    spec: TaskSpec
    file: str
    collector: ProblemCollector
    allow_unlabelled: bool
    # label -> the spec's own string: a dict checks membership as fast as a set (tag checks run
    # once per token), and rows share one string object per label instead of one per row
    label_set: Mapping[str, str]
    max_text_chars: int | None = None  # a longer text field is a problem (bounded memory)


class _Row:
    """One raw row being parsed; typed getters report problems against its file and line."""

    def __init__(self, data: Mapping[str, Any], line: int, ctx: _Context) -> None:
        self.data, self.line, self.ctx = data, line, ctx
        self.ok = True

    def problem(self, field: str | None, message: str) -> None:
        self.ok = False
        self.ctx.collector.add(self.ctx.file, self.line, field, message)

    def ident(self) -> str:
        value = self.data.get("id")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # numeric ids are common in exported data and harmless
        if not isinstance(value, str) or not value:
            self.problem("id", "missing id" if value in (None, "") else "id must be a string")
            return ""
        return value

    def text(self, key: str, *, required: bool = True, allow_empty: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(key, f"missing {key}")
            return None
        if not isinstance(value, str):
            self.problem(key, f"{key} must be a string, got {_json_type(value)}")
            return None
        limit = self.ctx.max_text_chars
        if limit is not None and len(value) > limit:
            self.problem(key, f"{key} has {len(value):,} characters; the limit is {limit:,}")
            return None
        if not allow_empty and not value.strip():
            self.problem(key, f"empty {key}")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.data.get(key)
        if value is None:
            self.problem(key, f"missing {key}")
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"{key} must be a list of strings, got {_describe(value)}")
            return None
        return tuple(value)

    def has_label(self, key: str) -> bool:
        """False when the row carries no label: a problem unless unlabelled rows are allowed."""
        if self.data.get(key) is not None:
            return True
        if not self.ctx.allow_unlabelled:
            self.problem(key, f"missing {key}")
        return False


def _classification(row: _Row) -> ClassificationExample | None:
    ident, text = row.ident(), row.text("text")
    text_pair = row.text("text_pair", required=False)
    label = row.data.get("label") if row.has_label("label") else None
    if label is not None and (not isinstance(label, str) or label not in row.ctx.label_set):
        expected = _one_of(row.ctx.spec.labels)
        row.problem("label", f"unknown label {label!r} (expected one of {expected})")
    if not row.ok or text is None:
        return None
    label = row.ctx.label_set[label] if label is not None else None
    return ClassificationExample(id=ident, text=text, text_pair=text_pair, label=label)


def _regression(row: _Row) -> RegressionExample | None:
    ident, text = row.ident(), row.text("text")
    text_pair = row.text("text_pair", required=False)
    label = row.data.get("label") if row.has_label("label") else None
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, int | float):
            row.problem("label", f"label must be a number, got {_json_type(label)}")
        elif not math.isfinite(label):
            row.problem("label", f"label must be a finite number, got {label}")
    if not row.ok or text is None:
        return None
    label = None if label is None else float(label)
    return RegressionExample(id=ident, text=text, text_pair=text_pair, label=label)


def _multiple_choice(row: _Row) -> MultipleChoiceExample | None:
    ident, choices = row.ident(), row.strings("choices")
    # The format lets context and question be empty (e.g. SWAG-style endings), so absent means "".
    context = row.text("context", required=False, allow_empty=True) or ""
    question = row.text("question", required=False, allow_empty=True) or ""
    if choices is not None and len(choices) < 2:
        row.problem("choices", f"needs at least 2 choices, got {len(choices)}")
    label = row.data.get("label") if row.has_label("label") else None
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, int):
            row.problem("label", f"label must be an integer choice index, got {_json_type(label)}")
        elif choices is not None and not 0 <= label < len(choices):
            row.problem("label", f"label {label} is out of range for {len(choices)} choices")
    if not row.ok or choices is None:
        return None
    return MultipleChoiceExample(ident, context, question, choices, label)


def _extractive_qa(row: _Row) -> QAExample | None:
    ident, context, question = row.ident(), row.text("context"), row.text("question")
    answers = _answers(row, context) if row.has_label("answers") else ()
    if not row.ok or context is None or question is None:
        return None
    return QAExample(id=ident, context=context, question=question, answers=answers)


def _answers(row: _Row, context: str | None) -> tuple[Answer, ...]:
    raw = row.data["answers"]
    if not isinstance(raw, list):
        message = f"answers must be a list (empty = unanswerable), got {_json_type(raw)}"
        row.problem("answers", message)
        return ()
    answers = (_answer(row, f"answers[{i}]", item, context) for i, item in enumerate(raw))
    return tuple(answer for answer in answers if answer is not None)


def _answer(row: _Row, key: str, item: Any, context: str | None) -> Answer | None:
    if not isinstance(item, dict):
        row.problem(key, f"answer must be an object with text and start, got {_json_type(item)}")
        return None
    text, start = item.get("text"), item.get("start")
    if not isinstance(text, str) or not text:
        row.problem(f"{key}.text", "missing or empty answer text")
    elif isinstance(start, bool) or not isinstance(start, int) or start < 0:
        row.problem(f"{key}.start", f"start must be a non-negative integer, got {start!r}")
    elif context is not None and context[start : start + len(text)] != text:
        row.problem(key, _offset_message(text, start, context))
    else:
        return Answer(text=text, start=start)
    return None


def _offset_message(text: str, start: int, context: str) -> str:
    found = context[start : start + len(text)]
    where = context.find(text)
    hint = f"it first occurs at {where}" if where >= 0 else "it does not occur in the context"
    return f"answer text not at its start offset (context there reads {found!r}; {hint})"


def _sequence_labeling(row: _Row) -> TaggingExample | None:
    ident, tokens = row.ident(), row.strings("tokens")
    if tokens is not None:
        _check_tokens(row, tokens)
    tags = row.strings("tags") if row.has_label("tags") else None
    if tags is not None and tokens is not None and len(tags) != len(tokens):
        row.problem("tags", f"{len(tokens)} tokens but {len(tags)} tags")
    unknown = [i for i, tag in enumerate(tags or ()) if tag not in row.ctx.label_set]
    if tags is not None and unknown:
        tag, expected = tags[unknown[0]], _one_of(row.ctx.spec.labels)
        message = f"unknown tag {tag!r} at position {unknown[0]} (expected one of {expected})"
        row.problem("tags", message)
    if not row.ok or tokens is None:
        return None
    tags = tuple(row.ctx.label_set[tag] for tag in tags) if tags is not None else None
    return TaggingExample(id=ident, tokens=tokens, tags=tags)


def _check_tokens(row: _Row, tokens: tuple[str, ...]) -> None:
    if not tokens:
        row.problem("tokens", "no tokens")
    # A blank token yields no sub-words, so its tag would silently vanish from training and scoring.
    blank = next((i for i, token in enumerate(tokens) if not token.strip()), None)
    if blank is not None:
        row.problem("tokens", f"token {blank} is empty or whitespace")


_PARSERS: dict[TaskType, Callable[[_Row], Example | None]] = {
    TaskType.CLASSIFICATION: _classification,
    TaskType.REGRESSION: _regression,
    TaskType.MULTIPLE_CHOICE: _multiple_choice,
    TaskType.EXTRACTIVE_QA: _extractive_qa,
    TaskType.SEQUENCE_LABELING: _sequence_labeling,
}


def parse_rows(
    spec: TaskSpec,
    raw_rows: Iterable[tuple[int, Mapping[str, Any] | Exception]],
    file: str,
    collector: ProblemCollector,
    *,
    allow_unlabelled: bool = False,
    max_text_chars: int | None = None,
) -> list[Example]:
    """Turn raw ``(line, row-or-read-error)`` pairs into typed examples, reporting every bad row
    (a text field longer than ``max_text_chars`` among them)."""
    labels = {label: label for label in spec.labels}
    ctx = _Context(spec, file, collector, allow_unlabelled, labels, max_text_chars)
    parse = _PARSERS[spec.type]
    examples: list[Example] = []
    seen_any = False
    for line, raw in raw_rows:
        seen_any = True
        if isinstance(raw, Exception):
            field_name = raw.field if isinstance(raw, RowError) else None
            message = str(raw) if isinstance(raw, RowError) else f"invalid JSON: {raw}"
            collector.add(file, line, field_name, message)
        elif not isinstance(raw, Mapping):
            collector.add(file, line, None, f"row must be a JSON object, got {_json_type(raw)}")
        elif (example := parse(_Row(raw, line, ctx))) is not None:
            examples.append(example)
    if not seen_any:
        collector.add(file, None, None, "file has no rows")
    return examples


# ---------------------------------------------------------------------------------------------
# Whole splits


def check_label_spread(
    spec: TaskSpec, examples: list[Example], file: str, collector: ProblemCollector
) -> None:
    """Report a training split whose labels are all the same: nothing can be learnt from it."""
    if spec.type not in (TaskType.CLASSIFICATION, TaskType.REGRESSION):
        return
    observed = {e.label for e in examples if e.label is not None}  # type: ignore[union-attr]
    labelled = sum(e.label is not None for e in examples)  # type: ignore[union-attr]
    if len(observed) == 1 and labelled > 1:
        only = next(iter(observed))
        message = f"all {labelled} labelled rows have label {only!r}; a model needs 2 or more"
        collector.add(file, None, "label", message)


def check_split_count(
    manifest: Mapping[str, Any], split: str, count: int, file: str, collector: ProblemCollector
) -> None:
    """Compare a split's row count with the count the manifest's ``splits`` declares, if any."""
    declared = manifest.get("splits")
    expected = declared.get(split) if isinstance(declared, Mapping) else None
    if isinstance(expected, int) and expected != count:
        message = f"task.json declares {expected} {split} rows but the file has {count}"
        collector.add(file, None, None, message)


def _member(enum: type[_E], value: Any) -> _E | None:
    """The enum member whose value is ``value``, or None."""
    try:
        return enum(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _one_of(values: Iterable[Any], limit: int = 10) -> str:
    values = list(values)
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown if len(values) <= limit else f"{shown}, ... ({len(values)} in all)"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        bad = next(v for v in value if not isinstance(v, str))
        return f"an array holding a {_json_type(bad)}"
    return _json_type(value)
