"""Label donors: the nearest labelled task whose head predicts the target's labels."""

from __future__ import annotations

import numpy as np

from workers.data.schema import Metric, TaskSpec, TaskType
from workers.selection.donor import choose_label_donor, shares_label_space


def _spec(name: str, type_: TaskType = TaskType.CLASSIFICATION, labels=("neg", "pos")) -> TaskSpec:
    metric = {TaskType.CLASSIFICATION: Metric.ACCURACY, TaskType.REGRESSION: Metric.PEARSON}
    return TaskSpec(name, type_, metric.get(type_, Metric.ACCURACY), tuple(labels))


def test_label_space_is_the_label_set_for_classification_and_the_type_otherwise():
    target = _spec("new")
    assert shares_label_space(target, _spec("sst2", labels=("pos", "neg")))  # order is free
    assert not shares_label_space(target, _spec("mnli", labels=("e", "n", "c")))
    assert not shares_label_space(target, _spec("stsb", TaskType.REGRESSION, ()))
    regression = _spec("new_sts", TaskType.REGRESSION, ())
    assert shares_label_space(regression, _spec("sick", TaskType.REGRESSION, ()))


def test_the_nearest_fitting_candidate_is_chosen():
    target = _spec("new")
    near, far = np.array([1.0, 0.1]), np.array([0.2, 1.0])
    candidates = {
        "closest_but_other_labels": (_spec("a", labels=("x", "y")), np.array([1.0, 0.0])),
        "far": (_spec("far"), far),
        "near": (_spec("near"), near),
    }
    assert choose_label_donor(target, np.array([1.0, 0.0]), candidates) == "near"
    assert choose_label_donor(target, np.array([1.0, 0.0]), {"far": candidates["far"]}) == "far"
    only_other = {"a": candidates["closest_but_other_labels"]}
    assert choose_label_donor(target, np.array([1.0, 0.0]), only_other) is None
    itself = {"new": (_spec("new"), near)}  # a task never donates to itself
    assert choose_label_donor(target, near, itself) is None
