"""Writing a ``TaskData`` back out in the shared task-folder format (task.json + split JSONL)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from workers.data.schema import Example, TaskData


def save_task_dir(task: TaskData, folder: Path) -> Path:
    """Write ``task`` as ``folder/task.json`` plus one ``<split>.jsonl`` per split."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {k: v for k, v in task.spec.to_dict().items() if v not in (None, [], ())}
    manifest["splits"] = {split: len(rows) for split, rows in task.splits.items()}
    (folder / "task.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    for split, rows in task.splits.items():
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as handle:
            for example in rows:
                handle.write(json.dumps(example_to_row(example), ensure_ascii=False) + "\n")
    return folder


def example_to_row(example: Example) -> dict:
    """One example as its row in the shared format (tuples become lists, None fields dropped)."""
    row = asdict(example)
    return {k: v for k, v in row.items() if v is not None}
