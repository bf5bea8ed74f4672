"""Helpers shared by CLI commands: user errors as one line, Rich progress, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

stderr = Console(stderr=True)
stdout = Console()


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit status 2, no traceback."""


_json_errors = False  # set by --json: a command asked for JSON gets its error as JSON too


def _json_mode(value: bool) -> bool:
    global _json_errors
    _json_errors = bool(value)
    return value


def reset_json_mode() -> None:
    """Each invocation starts in text mode (the CLI may run many times in one process)."""
    _json_mode(False)


JsonOption = Annotated[
    bool,
    typer.Option("--json", callback=_json_mode, help="Print results (and errors) as JSON."),
]


def fail(message: str) -> NoReturn:
    """One line for the user (``{"error": ...}`` on stdout under --json), exit status 2."""
    if _json_errors:
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    else:
        stderr.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn known user errors (bad data, missing folders, bad options) into a one-line message."""
    from workers.data.validation import TaskValidationError  # lazy: keeps `--help` fast

    try:
        yield
    except TaskValidationError as error:
        fail(_one_line(error))
    except (UserError, FileNotFoundError, NotADirectoryError, ValueError) as error:
        fail(str(error))
    except OSError as error:  # e.g. an encoder neither in a folder nor on a reachable hub
        fail(next((line for line in str(error).splitlines() if line.strip()), repr(error)))


def _one_line(error: Exception) -> str:
    problems = getattr(error, "problems", None) or []
    if not problems:
        return str(error)
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[_Bars]:
    """A ``(stage, step, total)`` callback drawing one Rich bar per stage on stderr."""
    if not enabled:
        update = _Bars(None)
        yield update
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[words]}"),
    )
    with Progress(*columns, console=stderr, transient=False) as progress:
        yield _Bars(progress)


class _Bars:
    """The ``(stage, step, total)`` callback, and ``describe(stage, words)`` for a bar's note
    (a job's place in the queue, its stage and time left)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, step: int, total: int) -> None:
        if self.progress is None:
            return
        if stage not in self.bars:
            self.bars[stage] = self.progress.add_task(stage, total=total, words="")
        self.progress.update(self.bars[stage], completed=step, total=total)

    def describe(self, stage: str, words: str) -> None:
        if self.progress is not None and stage in self.bars:
            self.progress.update(self.bars[stage], words=words)


def top_components(components: dict[str, float], n: int = 3) -> str:
    """A ranked task's ``n`` most similar components for a table cell, and its training rows
    where the method read them (``sized``): a count, not a similarity."""
    similar = [(c, v) for c, v in components.items() if not c.startswith("size.")]
    cells = [f"{c}={v:.3f}" for c, v in sorted(similar, key=lambda kv: -kv[1])[:n]]
    if "size.train_rows" in components:
        cells.append(f"rows={int(components['size.train_rows']):,}")
    return ", ".join(cells)
