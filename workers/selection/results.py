"""Transfer results: the CSV rows a sweep writes (or a user brings), and their per-pair means.

One row per (source, target, seed): ``source,target,seed,score,baseline,gain,metric``, where
``score`` is the target's validation score after transfer from ``source``, ``baseline`` the same
target and seed trained from the plain encoder, and ``gain = score - baseline``. Files a sweep
starts add what each run cost (``COST_FIELDS``); files begun before keep their seven columns.
A fusion sweep's ``source`` is the fused sources' names joined by ``FUSED`` (``snli+qnli``): such
rows are not single-source evidence (``single_source_rows``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

FIELDS = ("source", "target", "seed", "score", "baseline", "gain", "metric")
# The transfer stage's seconds, trained and total parameters and peak memory (MB), and the
# seconds of the source stage it started from (trained once per source and shared by its runs;
# also when it was loaded from a checkpoint or the adapter library: its original training)
COST_FIELDS = ("seconds", "trainable_params", "total_params", "peak_memory_mb", "source_seconds")
# Joins the names of the sources one run fused (task names never hold it)
FUSED = "+"


@dataclass(frozen=True)
class TransferRow:
    """One measured transfer: ``source`` → ``target`` with ``seed``, next to its baseline."""

    source: str
    target: str
    seed: int
    score: float
    baseline: float
    gain: float
    metric: str
    seconds: float | None = None  # COST_FIELDS: None where the file does not record them
    trainable_params: int | None = None
    total_params: int | None = None
    peak_memory_mb: float | None = None
    source_seconds: float | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.source, self.target, self.seed)


@dataclass(frozen=True)
class Outcome:
    """A (source, target) pair's mean over its seeds."""

    score: float
    gain: float
    seeds: int
    # The squared standard error of ``gain`` (its variance over seeds / seeds): how much of it
    # is seed noise. NaN under two seeds.
    gain_noise: float = math.nan


Outcomes = dict[str, dict[str, Outcome]]  # target -> source -> outcome


def outcomes(rows: Iterable[TransferRow]) -> Outcomes:
    """Mean score and gain per (target, source) over the seeds measured; self-transfers dropped."""
    grouped: dict[tuple[str, str], list[TransferRow]] = defaultdict(list)
    for row in rows:
        if row.source != row.target:
            grouped[(row.target, row.source)].append(row)
    result: Outcomes = defaultdict(dict)
    for (target, source), group in sorted(grouped.items()):
        gains = [r.gain for r in group]
        result[target][source] = Outcome(
            score=statistics.fmean(r.score for r in group),
            gain=statistics.fmean(gains),
            seeds=len(group),
            gain_noise=statistics.variance(gains) / len(gains) if len(gains) > 1 else math.nan,
        )
    return dict(result)


def reliability(measured: dict[str, Outcome]) -> float:
    """How far one target's differences between sources exceed seed noise, from 0 to 1.

    The variance of the sources' mean gains is the true spread plus the mean seed noise of a
    mean (``Outcome.gain_noise``); this is the true spread's share, the reliability of a
    one-way random-effects design. 0: the ranking of sources is indistinguishable from noise;
    1 where there is no noise estimate (single seeds), as nothing says otherwise.
    """
    noise = [o.gain_noise for o in measured.values() if not math.isnan(o.gain_noise)]
    if len(measured) < 2 or not noise:
        return 1.0
    spread = statistics.variance([o.gain for o in measured.values()])
    if spread == 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - statistics.fmean(noise) / spread))


def read_results(path: str | Path) -> list[TransferRow]:
    """Rows of a results CSV; a torn last line (a write cut short by a crash) is ignored."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    text = path.read_text(encoding="utf-8")
    if _is_torn(text):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    missing = [f for f in ("source", "target", "seed", "score") if f not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (expected {FIELDS})")
    rows = []
    for number, line in enumerate(reader, start=2):
        try:
            rows.append(_parse(line))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: bad row ({exc})") from None
    return rows


def single_source_rows(rows: list[TransferRow], path: str | Path) -> list[TransferRow]:
    """``rows``, or a ValueError naming the first that fused several sources: what ranks or
    scores a source from measured transfers needs one source per row."""
    fused = next((r for r in rows if FUSED in r.source), None)
    if fused is not None:
        raise ValueError(
            f"{path}: the row {fused.source} -> {fused.target} (seed {fused.seed}) fused several "
            "sources (a fusion sweep's): rankings are scored on single-source transfers; use "
            "a sequential or adapter sweep's results"
        )
    return rows


def _is_torn(text: str) -> bool:
    """True when the last line has no newline and fewer cells than the header: a cut write."""
    if not text or text.endswith("\n") or "\n" not in text:
        return False
    header, last = text.splitlines()[0], text.splitlines()[-1]
    cells = lambda line: len(next(csv.reader([line]), []))  # noqa: E731
    return cells(last) < cells(header)


def _parse(line: dict[str, str | None]) -> TransferRow:
    score = float(line["score"])  # type: ignore[arg-type]
    baseline = float(line["baseline"]) if line.get("baseline") not in (None, "") else None
    gain = float(line["gain"]) if line.get("gain") not in (None, "") else None
    if gain is None and baseline is None:
        raise ValueError("a row needs a gain or a baseline")
    baseline = baseline if baseline is not None else score - gain  # type: ignore[operator]
    return TransferRow(
        source=str(line["source"]),
        target=str(line["target"]),
        seed=int(line["seed"]),  # type: ignore[arg-type]
        score=score,
        baseline=baseline,
        gain=gain if gain is not None else score - baseline,
        metric=line.get("metric") or "",
        **{name: _number(line.get(name), name) for name in COST_FIELDS},
    )


def _number(cell: str | None, name: str) -> float | int | None:
    if cell in (None, ""):
        return None
    return int(cell) if name.endswith("params") else float(cell)


class ResultsWriter:
    """Appends rows to a CSV one at a time, each flushed and fsynced before the next run starts.

    A new file gets the cost columns; rows appended to an older file keep its columns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None
        self.columns: tuple[str, ...] = (*FIELDS, *COST_FIELDS)

    def __enter__(self) -> ResultsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            repair_tail(self.path)
            with self.path.open(newline="", encoding="utf-8") as handle:
                self.columns = tuple(next(csv.reader(handle), FIELDS))
        self._handle = self.path.open("a", newline="", encoding="utf-8")
        if fresh:
            self._write(self.columns)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle:
            self._handle.close()
            self._handle = None

    def write(self, row: TransferRow) -> None:
        values = asdict(row)
        self._write(tuple("" if values.get(c) is None else values.get(c) for c in self.columns))

    def _write(self, values: tuple) -> None:
        assert self._handle is not None, "use ResultsWriter as a context manager"
        csv.writer(self._handle, lineterminator="\n").writerow(values)
        self._handle.flush()
        os.fsync(self._handle.fileno())


def repair_tail(path: Path) -> None:
    """Before appending: cut a torn last line, or end a complete one that lacks its newline."""
    text = path.read_text(encoding="utf-8")
    if _is_torn(text):
        path.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")
    elif text and not text.endswith("\n"):
        path.write_text(text + "\n", encoding="utf-8")


def pinned_settings(results_csv: str | Path) -> dict:
    """The settings the sweep that wrote ``results_csv`` pinned beside it (its ``.sweep.json``,
    ``workers.sweep``), or ``{}`` for a file no sweep pinned."""
    pinned = Path(results_csv).with_suffix(".sweep.json")
    return json.loads(pinned.read_text()) if pinned.is_file() else {}
