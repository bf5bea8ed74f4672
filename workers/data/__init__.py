"""Task data: the typed representation, loaders, validation and sub-sampling."""

from workers.data.schema import (
    Answer,
    ClassificationExample,
    Example,
    Metric,
    MultipleChoiceExample,
    QAExample,
    RegressionExample,
    TaggingExample,
    TaskData,
    TaskSpec,
    TaskType,
)

__all__ = [
    "Answer",
    "ClassificationExample",
    "Example",
    "Metric",
    "MultipleChoiceExample",
    "QAExample",
    "RegressionExample",
    "TaggingExample",
    "TaskData",
    "TaskSpec",
    "TaskType",
]
