"""The artefact directory: files appear whole (temp file + rename) or not at all."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(handle)`` into a temp file beside it, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def move_into_place(source: Path, destination: Path) -> None:
    """Atomic on one file system (staging and artefacts share the data directory)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, destination)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe, collision-free name for ``text`` (an encoder id, say)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:limit]
    return f"{readable}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
