"""Evidence files: measured transfers brought from a sweep, another lab or a paper.

A file is CSV (with a header) or JSONL, one measured transfer per row: ``source``, ``target``,
``seed`` and ``score`` are required; ``baseline``, ``gain`` and ``metric`` are optional (a
sweep's own CSV reads as is). Scores are taken as given, on any scale: rankings are made per
target, so 0-1 and 0-100 files rank alike. Where a row has neither baseline nor gain, the gain is
measured against the mean score of its (target, seed) over the file's sources, which orders the
sources of a target exactly as true gains would.

Every problem (unknown task, missing field, non-finite number, duplicate pair and seed) is
collected with its 1-based line, up to a limit, and nothing is returned unless the whole file is
good: an import is all or nothing.

Transfer models are named as a user loads them, normalised so one model has one name
(:func:`transfer_model_name`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePath

from workers.selection.results import TransferRow

REQUIRED = ("source", "target", "seed", "score")
OPTIONAL = ("baseline", "gain", "metric")
MAX_PROBLEMS = 50
MAX_FIELD_CHARS = 200  # a task name or metric longer than this is not one

# Hub ids that moved into organisations (2024) load the same weights under both names.
_HUB_ORGS = ("google-bert/", "facebookai/", "distilbert/", "openai-community/")
# The packaged encoder's names (workers.encoder.PACKAGED_ALIASES, lower-cased).
_PACKAGED = {"all-minilm-l6-v2", "minilm", "sentence-transformers/all-minilm-l6-v2"}
PACKAGED_TRANSFER_MODEL = "all-minilm-l6-v2"


@dataclass(frozen=True)
class EvidenceProblem:
    """One thing wrong with an evidence file; ``row`` is the 1-based line (None: the file)."""

    row: int | None
    field: str | None
    message: str


class EvidenceFileError(ValueError):
    """The file cannot be imported; ``problems`` says where and why (at most ``MAX_PROBLEMS``)."""

    def __init__(self, message: str, problems: list[EvidenceProblem]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass
class ParsedEvidence:
    """A good file's rows and how their gains were read."""

    rows: list[TransferRow]
    # "given" (gain or baseline in every row) or "mean of sources" (see the module docstring)
    gain_basis: str = "given"
    metrics: list[str] = field(default_factory=list)


def transfer_model_name(name: str) -> str:
    """The one name of a transfer model: ``roberta-base``, ``all-minilm-l6-v2@<revision>``.

    Lower-cased (hub ids resolve case-insensitively), the organisation of a hub model that moved
    into one dropped, a local folder named by its last part, and an ``@revision`` kept. Nothing is
    loaded or looked up: a transfer model only labels evidence.
    """
    base, _, revision = name.strip().partition("@")
    base = base.strip().rstrip("/\\").lower()
    if base.startswith(("/", ".", "~")) or "\\" in base or base.count("/") > 1:
        base = PurePath(base.replace("\\", "/")).name  # a local folder: its name
    if base in _PACKAGED:
        base = PACKAGED_TRANSFER_MODEL
    for org in _HUB_ORGS:
        base = base.removeprefix(org)
    if not base:
        raise ValueError("a transfer model needs a name")
    return f"{base}@{revision.strip()}" if revision.strip() else base


def same_transfer_model(asked: str, recorded: str) -> bool:
    """Whether evidence recorded for ``recorded`` answers a question about ``asked`` (both
    normalised): the same name, and the same revision where the question names one."""
    if "@" in asked:
        return asked == recorded
    return asked == recorded.partition("@")[0]


def parse_evidence(
    data: bytes,
    filename: str = "",
    *,
    known_tasks: set[str] | None = None,
    max_rows: int = 200_000,
) -> ParsedEvidence:
    """The rows of an evidence file, or :class:`EvidenceFileError` listing every problem."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problem = EvidenceProblem(None, None, f"not UTF-8 text ({error.reason})")
        raise EvidenceFileError("the evidence file is not text", [problem]) from None
    checker = _Checker(known_tasks, max_rows)
    raw = _jsonl_lines(text) if _is_jsonl(text, filename) else _csv_lines(text, checker)
    for line, values in raw:
        checker.row(line, values)
        if checker.too_many:
            break
    return checker.result()


def _is_jsonl(text: str, filename: str) -> bool:
    suffix = PurePath(filename).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return True
    if suffix in (".csv", ".tsv", ".txt"):
        return False
    return text.lstrip().startswith("{")


def _jsonl_lines(text: str) -> Iterator[tuple[int, dict | str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as error:
            yield number, f"not valid JSON ({str(error)[:80]})"
            continue
        yield number, value if isinstance(value, dict) else "a row must be a JSON object"


def _csv_lines(text: str, checker: _Checker) -> Iterator[tuple[int, dict | str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        checker.problem(None, None, "the file is empty (expected a header line)")
        return
    columns = [c.strip() for c in header]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        checker.problem(1, None, f"missing column(s) {', '.join(missing)} in the header")
        return
    for cells in reader:
        number = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(columns):
            yield number, f"{len(cells)} cells where the header has {len(columns)}"
            continue
        yield number, {c: v for c, v in zip(columns, cells, strict=True) if v.strip() != ""}


class _Checker:
    """Reads rows one at a time, keeping good ones and every problem, located."""

    def __init__(self, known_tasks: set[str] | None, max_rows: int) -> None:
        self.known, self.max_rows = known_tasks, max_rows
        self.problems: list[EvidenceProblem] = []
        self.rows: list[tuple[int, dict]] = []
        self.seen: dict[tuple[str, str, int], int] = {}
        self.too_many = False
        self.count = 0

    def problem(self, row: int | None, field: str | None, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(EvidenceProblem(row, field, message))

    def row(self, line: int, values: dict | str) -> None:
        self.count += 1
        if self.count > self.max_rows:
            self.problem(None, None, f"more than {self.max_rows:,} rows (the import limit)")
            self.too_many = True
            return
        if isinstance(values, str):
            self.problem(line, None, values)
            return
        before = len(self.problems)
        parsed = {
            "source": self._task(line, values, "source"),
            "target": self._task(line, values, "target"),
            "seed": self._seed(line, values),
            "score": self._number(line, values, "score", required=True),
            "baseline": self._number(line, values, "baseline"),
            "gain": self._number(line, values, "gain"),
            "metric": self._text(line, values, "metric"),
        }
        if len(self.problems) > before or None in (parsed["source"], parsed["target"]):
            return
        if parsed["source"] == parsed["target"]:
            self.problem(line, "source", "a task cannot be its own source")
            return
        key = (parsed["source"], parsed["target"], parsed["seed"])
        if key in self.seen:
            message = f"duplicate of line {self.seen[key]} (same source, target and seed)"
            self.problem(line, "seed", message)
            return
        self.seen[key] = line
        self.rows.append((line, parsed))

    def _text(self, line: int, values: dict, name: str) -> str | None:
        value = values.get(name)
        if value is None:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.problem(line, name, f"{name} must be text")
            return None
        text = str(value).strip()
        if len(text) > MAX_FIELD_CHARS:
            self.problem(line, name, f"{name} is longer than {MAX_FIELD_CHARS} characters")
            return None
        return text

    def _task(self, line: int, values: dict, name: str) -> str | None:
        if values.get(name) in (None, ""):
            self.problem(line, name, f"missing {name}")
            return None
        task = self._text(line, values, name)
        if task is not None and self.known is not None and task not in self.known:
            self.problem(line, name, f"{task!r} is not a library task")
            return None
        return task

    def _seed(self, line: int, values: dict) -> int | None:
        value = values.get("seed")
        if value in (None, ""):
            self.problem(line, "seed", "missing seed")
            return None
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number != int(number) or abs(number) > 2**31 - 1:
            self.problem(line, "seed", f"seed must be a whole number, got {value!r}")
            return None
        return int(number)

    def _number(self, line: int, values: dict, name: str, required: bool = False) -> float | None:
        value = values.get(name)
        if value in (None, ""):
            if required:
                self.problem(line, name, f"missing {name}")
            return None
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            self.problem(line, name, f"{name} must be a finite number, got {value!r}")
            return None
        return number

    def result(self) -> ParsedEvidence:
        if not self.problems and not self.rows:
            self.problem(None, None, "the file holds no rows")
        if self.problems:
            raise EvidenceFileError(_summary(self.problems), self.problems)
        return _rows(self.rows)


def _summary(problems: list[EvidenceProblem]) -> str:
    more = "" if len(problems) < MAX_PROBLEMS else f" (the first {MAX_PROBLEMS} shown)"
    return f"the evidence file has {len(problems)} problem(s){more}; nothing was imported"


def _rows(parsed: list[tuple[int, dict]]) -> ParsedEvidence:
    """TransferRows, the gain from the row where it can be, else against the sources' mean."""
    by_run: dict[tuple[str, int], list[float]] = defaultdict(list)
    for _, p in parsed:
        by_run[(p["target"], p["seed"])].append(p["score"])
    basis = "given"
    rows = []
    for _, p in parsed:
        score, baseline, gain = p["score"], p["baseline"], p["gain"]
        if gain is None and baseline is None:
            basis = "mean of sources"
            baseline = statistics.fmean(by_run[(p["target"], p["seed"])])
        if gain is None:
            gain = score - baseline
        if baseline is None:
            baseline = score - gain
        rows.append(
            TransferRow(
                p["source"], p["target"], p["seed"], score, baseline, gain, p["metric"] or ""
            )
        )
    metrics = sorted({r.metric for r in rows if r.metric})
    return ParsedEvidence(rows, basis, metrics)


def summarise(rows: Iterable[TransferRow]) -> dict:
    """Counts a set's summary shows: rows, targets, sources, seeds, pairs."""
    rows = list(rows)
    pairs = {(r.source, r.target) for r in rows}
    return {
        "rows": len(rows),
        "targets": len({r.target for r in rows}),
        "sources": len({r.source for r in rows}),
        "seeds": len({r.seed for r in rows}),
        "pairs": len(pairs),
    }
