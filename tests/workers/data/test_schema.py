"""Task hashes: the content hash names a task's data and spec; the data hash only its rows."""

from __future__ import annotations

import dataclasses

from workers.data.schema import TaskData


def _renamed(task: TaskData, name: str, id_prefix: str) -> TaskData:
    spec = dataclasses.replace(task.spec, name=name, notes="a copy")
    splits = {
        split: [dataclasses.replace(ex, id=f"{id_prefix}{ex.id}") for ex in rows]
        for split, rows in task.splits.items()
    }
    return TaskData(spec, splits)


def test_the_same_rows_under_another_name_and_ids_share_the_data_hash(sentiment_task):
    copy = _renamed(sentiment_task, "my_copy", "x-")
    assert copy.data_hash() == sentiment_task.data_hash()
    assert copy.content_hash() != sentiment_task.content_hash()  # the name is part of it


def test_changed_rows_change_the_data_hash(sentiment_task):
    first = sentiment_task.train[0]
    changed = dataclasses.replace(first, text=first.text + "!")
    edited = TaskData(sentiment_task.spec, {**sentiment_task.splits})
    edited.splits["train"] = [changed, *sentiment_task.train[1:]]
    assert edited.data_hash() != sentiment_task.data_hash()
    fewer = TaskData(sentiment_task.spec, {"train": sentiment_task.train[1:]})
    assert fewer.data_hash() != sentiment_task.data_hash()
