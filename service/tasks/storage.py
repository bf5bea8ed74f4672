"""Task files in the artefact directory, and reading a stored task back as engine ``TaskData``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from service.models import Task, TaskFile
from service.settings import Settings
from workers.data.loaders import load_files, load_task_dir
from workers.data.schema import TaskData, TaskType


def task_folder(settings: Settings, task_id: int) -> Path:
    return settings.artifacts_dir / "tasks" / str(task_id)


@dataclass(frozen=True)
class StoredTask:
    """What a job needs to read a task's data, detached from any session."""

    id: int
    name: str
    manifest: dict[str, Any]
    folder: str | None
    files: dict[str, str]  # split -> path relative to the artefact directory
    labelled: bool = True

    @classmethod
    def of(cls, task: Task, files: list[TaskFile]) -> StoredTask:
        return cls(
            id=task.id,
            name=task.name,
            manifest=dict(task.manifest),
            folder=task.folder,
            files={f.split: f.path for f in files},
            labelled=task.labelled,
        )


def load_task_data(stored: StoredTask, settings: Settings) -> TaskData:
    """The validated rows of a stored task (train and validation splits)."""
    if stored.folder:
        return load_task_dir(stored.folder, splits=("train", "validation"))
    files = {split: settings.artifacts_dir / path for split, path in stored.files.items()}
    return load_files(stored.manifest, files, allow_unlabelled=not stored.labelled)


def summarise(data: TaskData) -> tuple[dict[str, int], dict[str, Any]]:
    """Rows per split, and the training labels' distribution in the form that fits the type."""
    counts = {split: len(rows) for split, rows in data.splits.items()}
    train = data.train
    kind = data.spec.type
    if kind is TaskType.CLASSIFICATION:
        distribution: dict[str, Any] = dict(Counter(ex.label for ex in train if ex.label))
    elif kind is TaskType.SEQUENCE_LABELING:
        distribution = dict(Counter(tag for ex in train for tag in ex.tags or ()))
    elif kind is TaskType.MULTIPLE_CHOICE:
        labels = Counter(ex.label for ex in train if ex.label is not None)
        distribution = {str(k): v for k, v in labels.items()}
    elif kind is TaskType.REGRESSION:
        values = [ex.label for ex in train if ex.label is not None]
        distribution = (
            {"min": min(values), "max": max(values), "mean": fmean(values)} if values else {}
        )
    else:
        answerable = sum(1 for ex in train if ex.answers)
        distribution = {"answerable": answerable, "unanswerable": len(train) - answerable}
    return counts, distribution
