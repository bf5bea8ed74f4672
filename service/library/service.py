"""Promoting tasks into the library, registering server-side task folders, removing tasks."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from sqlalchemy.orm import Session

from service.adapters import service as adapters
from service.context import AppContext
from service.db import unit_of_work
from service.embeddings import service as embeddings
from service.errors import Problem
from service.library.exceptions import FolderNotAllowed, LibraryNameTaken
from service.models import JobPriority, Owner, Task, TaskSource, TaskStatus
from service.recommendations import service as recommendations
from service.settings import Settings
from service.tasks import repository as tasks
from service.tasks import service as task_service
from service.tasks.exceptions import TaskInvalid, TaskNameTaken
from service.tasks.storage import summarise
from workers.data.loaders import iter_task_dirs, load_task_dir
from workers.data.validation import TaskValidationError

log = logging.getLogger(__name__)


def promote(session: Session, context: AppContext, task: Task, admin_id: int) -> Task:
    """Put a submitted task into the library; its vectors join the indexes on commit, and its
    adapter is queued as a registered task's is (``adapter_backfill_on_register``)."""
    if task.is_library:
        return task
    if tasks.library_name_taken(session, task.name, except_id=task.id):
        raise LibraryNameTaken(f"the library already has a task named {task.name!r}")
    task.is_library = True
    session.flush()
    recommendations.library_changed(session, context, task.id)
    adapters.entered_library(session, context, admin_id, [task])
    return task


def remove(session: Session, context: AppContext, task: Task) -> None:
    """Take a task out of the library: a registered folder is forgotten, an upload demoted."""
    if not task.is_library:
        return
    if task.source == TaskSource.FOLDER:
        task_service.delete_task(session, context, task)
        return
    if tasks.name_taken(session, task.owner_id, task.name):
        raise TaskNameTaken(
            f"its owner already has a task of their own named {task.name!r}: rename or delete "
            "that one first"
        )
    recommendations.library_changed(session, context, task.id, removed=True)
    task.is_library = False
    session.flush()


def register_folder(session: Session, context: AppContext, admin: Owner, path: str) -> list[Task]:
    """Register the task folder(s) at ``path`` (under a library root) and queue embeddings."""
    folder = _allowed_folder(context.settings, path)
    try:
        task_dirs = iter_task_dirs(folder)
    except TaskValidationError as exc:
        raise TaskInvalid(str(exc.problems[0].message), problems=None) from None
    return [_register_one(session, context, admin, task_dir) for task_dir in task_dirs]


def _register_one(session: Session, context: AppContext, admin: Owner, folder: Path) -> Task:
    existing = tasks.library_by_folder(session, str(folder))
    if existing is not None:
        return existing
    try:
        data = load_task_dir(folder, splits=("train", "validation"))
    except TaskValidationError as exc:
        problems = [
            Problem(file=_relative(p.file, folder), row=p.row, field=p.field, message=p.message)
            for p in exc.problems
        ]
        raise TaskInvalid(f"task folder {folder.name!r} is invalid", problems=problems) from None
    if tasks.library_name_taken(session, data.name):
        raise LibraryNameTaken(f"the library already has a task named {data.name!r}")
    counts, distribution = summarise(data)
    task = Task(
        owner_id=admin.id,
        name=data.name,
        type=data.spec.type.value,
        metric=data.spec.metric.value,
        labels=list(data.spec.labels),
        manifest=data.spec.to_dict(),
        source=TaskSource.FOLDER,
        folder=str(folder),
        content_hash=data.content_hash(),
        data_hash=data.data_hash(),
        counts=counts,
        label_distribution=distribution,
        status=TaskStatus.EMBEDDING,
        is_library=True,
    )
    tasks.add(session, task, [])
    # Tasks whose embeddings a seed cache ships finish in seconds: they go first, so most of the
    # library is ready at once while the rest is computed
    seeded = data.name in seeded_task_names(tuple(context.settings.embedding_seed_paths))
    priority = JobPriority.BACKFILL if seeded else JobPriority.BACKFILL_SLOW
    embeddings.queue_embedding(session, context, task, admin.id, priority=priority)
    adapters.entered_library(session, context, admin.id, [task])  # when the deployment asks
    return task


@functools.lru_cache(maxsize=4)
def seeded_task_names(seed_paths: tuple[Path, ...]) -> frozenset[str]:
    """Task names with embeddings in the seed caches (their metadata names the task): only an
    ordering hint, since a hit is decided by the data's hash when the job runs."""
    names = set()
    for folder in seed_paths:
        for meta in Path(folder).glob("*.json"):
            try:
                names.add(json.loads(meta.read_text())["task"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return frozenset(names)


def register_root(context: AppContext, admin_name: str) -> int:
    """Register every task folder under ``tasks_root`` (skipping bad ones); returns how many."""
    root = context.settings.tasks_root
    if not root.is_dir():
        return 0
    registered = 0
    for task_dir in iter_task_dirs(root):
        try:
            with unit_of_work(context.session_factory) as session:
                admin = _owner(session, admin_name)
                if tasks.library_by_folder(session, str(task_dir.resolve())) is None:
                    _register_one(session, context, admin, task_dir.resolve())
                    registered += 1
        except Exception as exc:
            log.warning("not registering %s: %s", task_dir.name, getattr(exc, "message", exc))
    return registered


def _owner(session: Session, name: str) -> Owner:
    from service.auth import repository as auth

    return auth.owner_by_name(session, name) or auth.add_owner(session, name, is_admin=True)


def _allowed_folder(settings: Settings, path: str) -> Path:
    folder = Path(path).expanduser().resolve()
    roots = [root.expanduser().resolve() for root in (settings.tasks_root, *settings.library_roots)]
    if not any(folder == root or folder.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise FolderNotAllowed(f"{path!r} is not under a library root ({shown})")
    return folder


def _relative(file: str, folder: Path) -> str:
    try:
        return str(Path(file).relative_to(folder.parent))
    except ValueError:
        return Path(file).name
