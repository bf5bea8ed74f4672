"""Label donors: which labelled task trains the head that labels an unlabelled task's TaskEmb.

TaskEmb is a Fisher of the task loss, so it needs labels. A task without any has them sampled
from a model's predictions; from an untrained head those describe a random classifier. So the
head is first trained on a *donor*: the labelled library task nearest to the target by TextEmb
whose head predicts in the target's label space. Torch-free: the service and the CLI both call it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from workers.data.schema import TaskSpec, TaskType

# Types whose head is defined by the label set; the others (regression's scalar, multiple
# choice's per-choice score, extractive QA's spans) share one label space per type.
LABEL_SET_TYPES = (TaskType.CLASSIFICATION, TaskType.SEQUENCE_LABELING)


def shares_label_space(target: TaskSpec, candidate: TaskSpec) -> bool:
    """Whether a head trained on ``candidate`` predicts ``target``'s labels."""
    if candidate.type is not target.type:
        return False
    if target.type in LABEL_SET_TYPES:
        return set(candidate.labels) == set(target.labels)
    return True


def choose_label_donor(
    target: TaskSpec,
    target_textemb: np.ndarray,
    candidates: Mapping[str, tuple[TaskSpec, np.ndarray]],
) -> str | None:
    """The candidate (name → spec, TextEmb) nearest to the target by cosine among those sharing
    its label space; None where none does. Ties go to the first name in sort order."""
    fitting = {
        name: vector
        for name, (spec, vector) in sorted(candidates.items())
        if name != target.name and shares_label_space(target, spec)
    }
    if not fitting:
        return None
    return max(fitting, key=lambda name: _cosine(target_textemb, fitting[name]))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm else 0.0
