"""One typed representation for the five task types of the shared task format.

Rows are immutable dataclasses; a label of ``None`` means the row is unlabelled (TaskEmb then
samples labels from the model's predictive distribution).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class TaskType(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    MULTIPLE_CHOICE = "multiple_choice"
    EXTRACTIVE_QA = "extractive_qa"
    SEQUENCE_LABELING = "sequence_labeling"


class Metric(StrEnum):
    ACCURACY = "accuracy"
    F1 = "f1"  # binary, positive class = second label
    MACRO_F1 = "macro_f1"
    MATTHEWS = "matthews"
    PEARSON = "pearson"
    SPEARMAN = "spearman"
    SQUAD = "squad"  # exact match + token F1
    SEQEVAL_F1 = "seqeval_f1"
    TOKEN_ACCURACY = "token_accuracy"


# Which metrics make sense for which task type (validation refuses the rest).
METRICS_BY_TYPE: dict[TaskType, tuple[Metric, ...]] = {
    TaskType.CLASSIFICATION: (Metric.ACCURACY, Metric.F1, Metric.MACRO_F1, Metric.MATTHEWS),
    TaskType.REGRESSION: (Metric.PEARSON, Metric.SPEARMAN),
    TaskType.MULTIPLE_CHOICE: (Metric.ACCURACY,),
    TaskType.EXTRACTIVE_QA: (Metric.SQUAD,),
    TaskType.SEQUENCE_LABELING: (Metric.SEQEVAL_F1, Metric.TOKEN_ACCURACY),
}


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its manifest, without the rows."""

    name: str
    type: TaskType
    metric: Metric
    labels: tuple[str, ...] = ()  # label set (classification) or tag set (sequence labelling)
    family: str | None = None
    title: str | None = None
    domain: str | None = None
    notes: str | None = None

    @property
    def num_labels(self) -> int:
        """Output size of the task head."""
        if self.type is TaskType.REGRESSION:
            return 1
        return len(self.labels)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["type"] = self.type.value
        data["metric"] = self.metric.value
        data["labels"] = list(self.labels)
        return data


@dataclass(frozen=True, slots=True)
class ClassificationExample:
    id: str
    text: str
    text_pair: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class RegressionExample:
    id: str
    text: str
    text_pair: str | None = None
    label: float | None = None


@dataclass(frozen=True, slots=True)
class MultipleChoiceExample:
    id: str
    context: str
    question: str
    choices: tuple[str, ...]
    label: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    start: int


@dataclass(frozen=True, slots=True)
class QAExample:
    id: str
    context: str
    question: str
    answers: tuple[Answer, ...] = ()  # empty = unanswerable


@dataclass(frozen=True, slots=True)
class TaggingExample:
    id: str
    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None = None


Example = (
    ClassificationExample | RegressionExample | MultipleChoiceExample | QAExample | TaggingExample
)


@dataclass
class TaskData:
    """A task's spec and its validated splits (``train``, ``validation``, optionally ``test``)."""

    spec: TaskSpec
    splits: dict[str, list[Example]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def train(self) -> list[Example]:
        return self.splits.get("train", [])

    @property
    def validation(self) -> list[Example]:
        return self.splits.get("validation", [])

    def data_hash(self) -> str:
        """A hash of the rows alone (and the task type): the same data under another name,
        metric or row ids has the same one. Recommending a library task with the target's own
        data would train the target on itself."""
        digest = hashlib.sha256(self.spec.type.value.encode())
        for split in sorted(self.splits):
            digest.update(split.encode())
            for example in self.splits[split]:
                row = {k: v for k, v in asdict(example).items() if k != "id"}
                digest.update(json.dumps(row, sort_keys=True).encode())
        return digest.hexdigest()

    def content_hash(self) -> str:
        """A stable hash of the spec and every row: the cache key for anything derived from data."""
        digest = hashlib.sha256()
        spec = self.spec.to_dict()
        spec.pop("notes", None)  # notes and titles do not change what a model sees
        spec.pop("title", None)
        digest.update(json.dumps(spec, sort_keys=True).encode())
        for split in sorted(self.splits):
            digest.update(split.encode())
            for example in self.splits[split]:
                digest.update(json.dumps(asdict(example), sort_keys=True).encode())
        return digest.hexdigest()


def has_label(example: Example) -> bool:
    """Whether a row carries its label (an answer, for extractive QA; tags, for tagging)."""
    if isinstance(example, QAExample):
        return bool(example.answers)
    if isinstance(example, TaggingExample):
        return example.tags is not None
    return example.label is not None
