"""Tasks from Hugging Face datasets, read with the engine's ``load_hf_dataset``.

A folder saved with ``save_to_disk`` under a library root (``tasks_root``, ``library_roots``) is
loaded inside the request, like an upload. A Hub dataset comes over the network, so a request
only checks what it can without it and queues an ``import`` job (``service.tasks.jobs``) that
loads it and creates the task. Either way the validated rows are written as JSONL in our field
names into the staging folder and stored as the task's files, so the task reads back with
``load_files`` like any upload, and a rejected dataset leaves nothing behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from service.errors import Problem
from service.models import TaskSource
from service.settings import Settings
from service.tasks.exceptions import DatasetNotAllowed, TaskInvalid, UploadTooLarge
from service.tasks.schemas import HfDatasetRef
from service.tasks.uploads import StagedUpload, write_rows
from workers.data.loaders import load_hf_dataset
from workers.data.schema import TaskData
from workers.data.validation import ProblemCollector, TaskValidationError, validate_manifest
from workers.data.writer import example_to_row

SPLITS = ("train", "validation")  # the splits a task keeps
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "glue", "nyu-mll/glue"
SERVER_PATH = ("/", "./", "../", "~")  # how a folder on the server is written


def is_hub(path: str) -> bool:
    """Whether ``path`` names a Hub dataset (else a folder on the server)."""
    return not path.startswith(SERVER_PATH)


def load(staged: StagedUpload, settings: Settings, *, hub: bool = False) -> StagedUpload:
    """The dataset ``staged.hf`` names, validated, as JSONL task files in ``staged``'s folder.

    Hub datasets only with ``hub``: the import job loads them, never a request.
    """
    ref = staged.hf.hf
    if is_hub(ref.path) and not hub:
        message = f"{ref.path!r} is a Hub dataset: POST /v1/tasks loads it in a job (follow that)"
        raise _invalid(ref.path, message)
    source, sizes = _open(ref, settings)
    split_map = dict(ref.split_map or {s: s for s in SPLITS if s in sizes})
    rows = sum(sizes.get(name) or 0 for name in split_map.values())
    if rows > settings.max_upload_rows:
        raise UploadTooLarge(f"{rows} rows exceed the limit of {settings.max_upload_rows} per task")
    data = _validated(source, ref, staged.manifest(), split_map)
    return _written(staged, data, ref.path, split_map)


def check_hub_id(path: str) -> str:
    """``path`` if it is a Hub dataset id that no folder on this server shadows."""
    if not HUB_ID.fullmatch(path) or ".." in path:
        message = f"{path!r} is neither a Hub dataset id ('glue', 'org/name') nor an absolute path"
        raise _invalid(path, message)
    if Path(path).exists():  # load_hf_dataset would read that folder instead of the Hub
        message = f"{path!r} is also a folder on the server: give a Hub id as 'org/name'"
        raise _invalid(path, message)
    return path


def check_manifest(manifest: Mapping[str, Any]) -> None:
    """Name, type and metric, before the dataset is loaded (labels may come from its ClassLabel)."""
    collector = ProblemCollector()
    validate_manifest(manifest, "manifest", collector)
    found = [p for p in collector.problems if p.field != "labels" or "labels" in manifest]
    if found:
        raise TaskInvalid(_rejected(len(found)), problems=_problems(found, "", ""))


def local_folder(settings: Settings, path: str) -> Path:
    """The folder ``path`` names, if it lies under a library root (else 403)."""
    folder = Path(path).expanduser().resolve()
    roots = [r.expanduser().resolve() for r in (settings.tasks_root, *settings.library_roots)]
    if not any(folder.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise DatasetNotAllowed(f"{path!r} is not under a library root ({shown})")
    if not folder.is_dir():
        raise _invalid(path, f"no folder {path!r} on the server")
    return folder


def hub_split_names(path: str, config: str | None) -> list[str]:
    """The splits of a Hub dataset (network)."""
    import datasets

    return list(datasets.get_dataset_split_names(path, config))


def _open(ref: HfDatasetRef, settings: Settings) -> tuple[str, dict[str, int | None]]:
    """What to pass ``load_hf_dataset``, and the dataset's splits with their rows if known."""
    if is_hub(ref.path):
        source = check_hub_id(ref.path)
        names = (
            list(ref.split_map.values()) if ref.split_map else hub_split_names(source, ref.config)
        )
        return source, dict.fromkeys(names)
    folder = local_folder(settings, ref.path)
    return str(folder), _saved_splits(folder, ref.path)


def _saved_splits(folder: Path, shown: str) -> dict[str, int | None]:
    """Rows per split of a ``save_to_disk`` folder (a single Dataset counts as train)."""
    import datasets  # heavy: only datasets need it

    try:
        saved = datasets.load_from_disk(str(folder))
    except FileNotFoundError:
        raise _invalid(shown, f"{shown!r} holds no dataset saved with save_to_disk") from None
    if isinstance(saved, datasets.Dataset):
        return {"train": saved.num_rows}
    return {name: part.num_rows for name, part in saved.items()}


def _validated(source: str, ref: HfDatasetRef, manifest: dict, split_map: dict) -> TaskData:
    try:
        return load_hf_dataset(source, config=ref.config, manifest=manifest, split_map=split_map)
    except TaskValidationError as exc:
        problems = _problems(exc.problems, source, ref.path)
        raise TaskInvalid(_rejected(len(problems)), problems=problems) from None


def _written(staged: StagedUpload, data: TaskData, shown: str, split_map: dict) -> StagedUpload:
    """``data``'s rows as JSONL in our field names: task files that ``load_files`` reads back."""
    spec = data.spec
    fields: dict[str, Any] = {"name": spec.name, "type": spec.type.value}
    fields |= {"metric": spec.metric.value, "labels": list(spec.labels) or None}
    loaded = StagedUpload(staged.folder, TaskSource.HF, {k: v for k, v in fields.items() if v})
    for split, examples in data.splits.items():
        filename = f"{shown}[{split_map[split]}]"[-255:]  # shown to the client, as a file name
        rows = (example_to_row(example) for example in examples)
        loaded.files[split] = write_rows(staged.folder, split, rows, filename)
    return loaded


def _problems(found: Iterable, source: str, shown: str) -> list[Problem]:
    """The engine's problems, naming the dataset as the client did (not the resolved path)."""
    return [
        Problem(
            file=None if p.file in ("", "manifest") else p.file.replace(source, shown, 1),
            row=p.row,
            field=p.field,
            message=p.message,
        )
        for p in found
    ]


def _rejected(count: int) -> str:
    return f"the dataset was rejected: {count} problem{'s' if count != 1 else ''} found"


def _invalid(path: str, message: str) -> TaskInvalid:
    return TaskInvalid(message, problems=[Problem(field="hf.path", message=message)])
