"""Loaders for task data: shared task folders, loose JSONL/CSV/TSV files and Hugging Face datasets.

Every loader validates as it reads and raises one :class:`TaskValidationError` listing all problems
found (up to ``max_problems``), so a broken upload is fixed in one round.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from workers.data.schema import Example, TaskData, TaskSpec, TaskType
from workers.data.validation import (
    DEFAULT_MAX_PROBLEMS,
    Problem,
    ProblemCollector,
    RowError,
    TaskValidationError,
    check_label_spread,
    check_split_count,
    parse_rows,
    validate_manifest,
)

SPLITS = ("train", "validation", "test")
MANIFEST = "task.json"

RawRow = tuple[int, Mapping[str, Any] | Exception]  # (1-based line, row or the error reading it)

# Our field names, which a manifest's ``fields`` may map to other column names.
FIELDS = ("id", "text", "text_pair", "label", "context", "question", "choices", "answers")
FIELDS += ("tokens", "tags")
_LIST_FIELDS = frozenset({"choices", "tokens", "tags", "answers"})  # JSON-encoded in CSV/TSV cells
_LABEL_FIELDS = frozenset({"label", "answers", "tags"})
_REQUIRED: dict[TaskType, tuple[str, ...]] = {
    TaskType.CLASSIFICATION: ("text", "label"),
    TaskType.REGRESSION: ("text", "label"),
    TaskType.MULTIPLE_CHOICE: ("choices", "label"),
    TaskType.EXTRACTIVE_QA: ("context", "question", "answers"),
    TaskType.SEQUENCE_LABELING: ("tokens", "tags"),
}


# ---------------------------------------------------------------------------------------------
# Shared task folders


def load_task_dir(
    path: str | Path,
    *,
    splits: Iterable[str] = SPLITS,
    allow_unlabelled: bool = False,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
) -> TaskData:
    """Load and validate a task folder in the shared format (``task.json`` + ``<split>.jsonl``)."""
    folder = Path(path)
    collector = ProblemCollector(max_problems)
    manifest = _read_task_manifest(folder, collector)
    spec = validate_manifest(manifest, str(folder / MANIFEST), collector)
    if spec is None:
        collector.raise_if_any()
    loaded: dict[str, list[Example]] = {}
    for split in splits:
        file = folder / f"{split}.jsonl"
        if not file.is_file():
            _report_missing_split(manifest, split, file, collector)
            continue
        before = collector.count
        rows = read_jsonl(file)
        loaded[split] = _load_split(spec, split, rows, str(file), collector, allow_unlabelled)
        if collector.count == before:  # a count check on a file with bad rows would only add noise
            check_split_count(manifest, split, len(loaded[split]), str(file), collector)
    collector.raise_if_any()
    return TaskData(spec=spec, splits=loaded)


def spec_from_manifest(manifest: Mapping[str, Any], file: str) -> TaskSpec:
    """Validate a manifest and return its spec; raises :class:`TaskValidationError` if bad."""
    collector = ProblemCollector()
    spec = validate_manifest(manifest, file, collector)
    collector.raise_if_any()
    assert spec is not None  # validate_manifest returns None only after reporting a problem
    return spec


def resolve_task_path(name_or_path: str, tasks_root: Path) -> Path:
    """Find a task folder: an existing path wins, else ``tasks_root / name``."""
    candidate = Path(name_or_path).expanduser()
    if candidate.exists():
        return candidate
    in_root = Path(tasks_root) / name_or_path
    # Only a bare name is looked up under the root, so "../x" cannot climb out of it.
    is_bare_name = name_or_path not in ("", ".", "..") and Path(name_or_path).name == name_or_path
    if is_bare_name and in_root.exists():
        return in_root
    message = f"no task found: looked for '{candidate}' and '{in_root}'"
    raise TaskValidationError([Problem(name_or_path, None, None, message)])


def iter_task_dirs(root: Path) -> list[Path]:
    """The task folders at ``root``: itself if it is one, else its sub-folders that are (sorted)."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return [root]
    if not root.is_dir():
        raise TaskValidationError([Problem(str(root), None, None, "task folder not found")])
    return sorted(child for child in root.iterdir() if (child / MANIFEST).is_file())


def read_jsonl(path: Path) -> Iterator[RawRow]:
    """Stream ``(line number, row)`` from JSONL; blank lines are skipped, bad ones yield errors."""
    with path.open("rb") as handle:  # bytes, so one badly encoded line is reported, not fatal
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, RowError(f"line is not valid UTF-8 ({exc.reason})")
                continue
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, exc
            except RecursionError:  # "[[[[..." deeper than Python's stack: not a row, not a crash
                yield line_no, RowError("line is not a row: JSON nested too deeply")


def _read_task_manifest(folder: Path, collector: ProblemCollector) -> Mapping[str, Any]:
    """Read ``task.json``; a missing folder or unreadable manifest ends loading at once."""
    file = folder / MANIFEST
    if not folder.is_dir():
        collector.add(str(folder), None, None, "task folder not found")
    elif not file.is_file():
        collector.add(str(file), None, None, f"no {MANIFEST} in the task folder")
    else:
        return _read_manifest_file(file, collector)
    collector.raise_if_any()
    return {}  # unreachable: raise_if_any raised


def _read_manifest_file(file: Path, collector: ProblemCollector) -> Mapping[str, Any]:
    """Parse a JSON (or, for ``.yaml``/``.yml``, YAML) manifest, raising if it cannot be read."""
    try:
        text = file.read_text(encoding="utf-8-sig")
        if file.suffix in (".yaml", ".yml"):
            import yaml  # only the rare YAML manifest needs it

            return yaml.safe_load(text)
        return json.loads(text)
    except json.JSONDecodeError as exc:
        collector.add(str(file), exc.lineno, None, f"invalid JSON: {exc.msg}")
    except Exception as exc:  # unreadable file or bad YAML: report it like any other problem
        collector.add(str(file), None, None, f"cannot read manifest: {exc}")
    collector.raise_if_any()
    return {}


def _report_missing_split(
    manifest: Mapping[str, Any], split: str, file: Path, collector: ProblemCollector
) -> None:
    """Train is required; another split is only missed if the manifest says it was written."""
    declared = manifest.get("splits")
    if split == "train":
        collector.add(str(file), None, None, "missing train.jsonl (a task needs training rows)")
    elif isinstance(declared, Mapping) and declared.get(split):
        message = f"task.json declares {declared[split]} {split} rows but {file.name} is missing"
        collector.add(str(file), None, None, message)


def _load_split(
    spec: TaskSpec,
    split: str,
    rows: Iterable[RawRow],
    file: str,
    collector: ProblemCollector,
    allow_unlabelled: bool,
    max_text_chars: int | None = None,
) -> list[Example]:
    examples = parse_rows(
        spec,
        rows,
        file,
        collector,
        allow_unlabelled=allow_unlabelled,
        max_text_chars=max_text_chars,
    )
    if split == "train":
        check_label_spread(spec, examples, file, collector)
    return examples


# ---------------------------------------------------------------------------------------------
# Loose files: a small manifest plus JSONL / CSV / TSV files


def load_files(
    manifest: Mapping[str, Any] | str | Path,
    files: Mapping[str, str | Path],
    *,
    allow_unlabelled: bool = False,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
    max_text_chars: int | None = None,
) -> TaskData:
    """Load ``{split: file}`` (``.jsonl``/``.json``, ``.csv``, ``.tsv``) described by a manifest.

    The manifest holds ``name``, ``type``, ``labels``, ``metric`` and optionally ``fields``,
    mapping our field names to the files' column names, e.g. ``{"text": "sentence1"}``. A text
    field longer than ``max_text_chars`` is a problem of its row.
    """
    collector = ProblemCollector(max_problems)
    manifest, manifest_file = _manifest_arg(manifest, collector)
    spec = validate_manifest(manifest, manifest_file, collector)
    columns = _columns(manifest.get("fields"), manifest_file, collector)
    if spec is None or columns is None:
        collector.raise_if_any()
    if "train" not in files:
        collector.add(manifest_file, None, None, "no train file given (a task needs training rows)")
    loaded: dict[str, list[Example]] = {}
    for split, path in files.items():
        rows = _file_rows(Path(path), split, spec, columns, collector, allow_unlabelled)
        if rows is not None:
            loaded[split] = _load_split(
                spec, split, rows, str(path), collector, allow_unlabelled, max_text_chars
            )
    collector.raise_if_any()
    return TaskData(spec=spec, splits=loaded)


def read_table(path: Path, *, delimiter: str) -> Iterator[RawRow]:
    """Stream CSV/TSV rows as ``(first line of the row, {column: cell})``; line 1 is the header."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, **_dialect(delimiter))
        header = next(reader, None)
        if header is None:
            return
        next_line = reader.line_num + 1
        for cells in reader:
            # A quoted cell may span lines, so a row starts just after where the last one ended.
            line, next_line = next_line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                message = f"row has {len(cells)} cells but the header has {len(header)}"
                yield line, RowError(message)
            else:
                yield line, dict(zip(header, cells, strict=True))


def _read_header(path: Path, delimiter: str) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle, **_dialect(delimiter)), [])


def _dialect(delimiter: str) -> dict[str, Any]:
    # Long contexts exceed csv's default 128 KiB cell limit (a process-wide setting, raised once).
    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))
    if delimiter == "\t":
        # TSV exports (GLUE among them) leave quotes unescaped inside cells: read them literally.
        return {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    return {"delimiter": delimiter}


def _manifest_arg(
    manifest: Mapping[str, Any] | str | Path, collector: ProblemCollector
) -> tuple[Mapping[str, Any], str]:
    """Accept a manifest dict or the path of a JSON/YAML file holding one."""
    if isinstance(manifest, Mapping):
        return manifest, "manifest"
    file = Path(manifest)
    if not file.is_file():
        collector.add(str(file), None, None, "manifest file not found")
        collector.raise_if_any()
    loaded = _read_manifest_file(file, collector)
    if not isinstance(loaded, Mapping):
        collector.add(str(file), None, None, "manifest must be a JSON object")
        collector.raise_if_any()
    return loaded, str(file)


def _columns(fields: Any, file: str, collector: ProblemCollector) -> dict[str, str] | None:
    """Map each of our field names to its column: ``fields`` where given, else the same name."""
    fields = {} if fields is None else fields
    if not isinstance(fields, Mapping) or not all(isinstance(v, str) for v in fields.values()):
        collector.add(file, None, "fields", "fields must map field names to column names")
        return None
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        message = f"unknown field(s) {', '.join(map(repr, unknown))} (expected {', '.join(FIELDS)})"
        collector.add(file, None, "fields", message)
        return None
    return {name: fields.get(name, name) for name in FIELDS}


def _check_columns(
    available: Iterable[str],
    columns: Mapping[str, str],
    spec: TaskSpec,
    file: str,
    collector: ProblemCollector,
    allow_unlabelled: bool,
) -> bool:
    """Check that every required (or explicitly mapped) field has its column; report the rest."""
    available = set(available)
    required = [f for f in _REQUIRED[spec.type] if not (allow_unlabelled and f in _LABEL_FIELDS)]
    wanted = dict.fromkeys([*required, *(f for f, c in columns.items() if c != f)])
    missing = [(f, columns[f]) for f in wanted if columns[f] not in available]
    for name, column in missing:
        header = ", ".join(sorted(available)) or "none"
        collector.add(file, None, name, f"no column '{column}' for {name} (columns: {header})")
    return not missing


def _file_rows(
    path: Path,
    split: str,
    spec: TaskSpec,
    columns: Mapping[str, str],
    collector: ProblemCollector,
    allow_unlabelled: bool,
) -> Iterator[RawRow] | None:
    """The raw rows of one file, with our field names; None (problem reported) if unusable."""
    suffix = path.suffix.lower()
    if not path.is_file():
        collector.add(str(path), None, None, "file not found")
    elif suffix in (".jsonl", ".json"):
        return _mapped(read_jsonl(path), columns, split)
    elif suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        header = _read_header(path, delimiter)
        if not header:
            collector.add(str(path), None, None, "file is empty (a header row is required)")
        elif _check_columns(header, columns, spec, str(path), collector, allow_unlabelled):
            decode = partial(_decode_cells, task_type=spec.type)
            rows = read_table(path, delimiter=delimiter)
            return _mapped(rows, columns, split, decode=decode, blank_is_absent=True)
    else:
        message = f"unsupported file type '{path.suffix}' (use .jsonl, .csv or .tsv)"
        collector.add(str(path), None, None, message)
    return None


def _mapped(
    rows: Iterable[RawRow],
    columns: Mapping[str, str],
    split: str,
    *,
    decode: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    blank_is_absent: bool = False,
) -> Iterator[RawRow]:
    """Rename columns to our fields, give id-less rows an id, and decode text cells if asked."""
    for index, (line, raw) in enumerate(rows):
        if isinstance(raw, Exception) or not isinstance(raw, Mapping):
            yield line, raw
            continue
        # An empty CSV cell means "absent"; in JSON an empty string is a value and is kept.
        row = {
            name: raw[column]
            for name, column in columns.items()
            if raw.get(column) is not None and not (blank_is_absent and raw[column] == "")
        }
        row.setdefault("id", f"{split}-{index}")
        try:
            yield line, decode(row) if decode else row
        except RowError as exc:
            yield line, exc


def _decode_cells(row: dict[str, Any], *, task_type: TaskType) -> dict[str, Any]:
    """CSV/TSV cells are text: list fields arrive as JSON and numeric labels as digits."""
    for name in _LIST_FIELDS & row.keys():
        try:
            row[name] = json.loads(row[name])
        except json.JSONDecodeError as exc:
            hint = 'give lists as JSON, e.g. ["a", "b"]'
            raise RowError(f"cell is not valid JSON ({exc.msg}); {hint}", field=name) from None
        except RecursionError:
            raise RowError("cell is JSON nested too deeply", field=name) from None
    _coerce_label(row, task_type)
    return row


def _coerce_label(row: dict[str, Any], task_type: TaskType) -> None:
    """Parse a text label into the number its task type needs (regression float, choice int)."""
    label = row.get("label")
    if not isinstance(label, str):
        return
    try:
        if task_type is TaskType.REGRESSION:
            row["label"] = float(label)
        elif task_type is TaskType.MULTIPLE_CHOICE:
            row["label"] = int(label)
    except ValueError:
        kind = "a number" if task_type is TaskType.REGRESSION else "an integer choice index"
        raise RowError(f"label must be {kind}, got {label!r}", field="label") from None


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets


def load_hf_dataset(
    name_or_path: str,
    *,
    config: str | None = None,
    manifest: Mapping[str, Any],
    split_map: Mapping[str, str] | None = None,
    allow_unlabelled: bool = False,
    max_problems: int = DEFAULT_MAX_PROBLEMS,
) -> TaskData:
    """Load a dataset saved with ``save_to_disk`` (if the path exists) or from the Hub.

    ``manifest`` is as for :func:`load_files`; ``split_map`` maps our split names to the
    dataset's (default: whichever of train/validation/test it has). ClassLabel ints become names.
    """
    dataset = _open_hf(name_or_path, config)
    collector = ProblemCollector(max_problems)
    columns = _columns(manifest.get("fields"), "manifest", collector)
    split_map = dict(split_map or {s: s for s in SPLITS if s in dataset})
    _check_split_map(split_map, dataset, name_or_path, collector)
    train = dataset.get(split_map.get("train", ""))
    if columns is not None and train is not None:
        manifest = _with_class_label_names(manifest, train.features, columns)
    spec = validate_manifest(manifest, "manifest", collector)
    if spec is None or columns is None or collector.count:
        collector.raise_if_any()  # the set-up is wrong: checking rows would only add noise
    loaded: dict[str, list[Example]] = {}
    for split, hf_split in split_map.items():
        part, file = dataset[hf_split], f"{name_or_path}[{hf_split}]"
        if _check_columns(part.column_names, columns, spec, file, collector, allow_unlabelled):
            rows = _hf_rows(part, split, spec.type, columns)
            loaded[split] = _load_split(spec, split, rows, file, collector, allow_unlabelled)
    collector.raise_if_any()
    return TaskData(spec=spec, splits=loaded)


def _open_hf(name_or_path: str, config: str | None) -> Mapping[str, Any]:
    """A ``{split: Dataset}`` mapping; a single saved Dataset counts as the train split."""
    import datasets  # heavy; only this loader needs it

    if Path(name_or_path).exists():
        loaded = datasets.load_from_disk(name_or_path)
    else:
        loaded = datasets.load_dataset(name_or_path, config)
    return {"train": loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)


def _check_split_map(
    split_map: Mapping[str, str],
    dataset: Mapping[str, Any],
    name: str,
    collector: ProblemCollector,
) -> None:
    available = ", ".join(dataset) or "none"
    if "train" not in split_map:
        message = f"no train split (dataset splits: {available}); pass split_map"
        collector.add(name, None, None, message)
    for hf_split in split_map.values():
        if hf_split not in dataset:
            message = f"no split '{hf_split}' (dataset splits: {available})"
            collector.add(name, None, None, message)


def _hf_rows(
    part: Iterable[Mapping[str, Any]], split: str, task_type: TaskType, columns: Mapping[str, str]
) -> Iterator[RawRow]:
    """Rows of one dataset split with our field names and label names; numbered from 1."""
    decoders = _class_label_decoders(part.features)  # type: ignore[attr-defined]
    rows = (
        (i, {c: decoders[c](v) if c in decoders else v for c, v in row.items()})
        for i, row in enumerate(part, start=1)
    )
    return _mapped(rows, columns, split, decode=partial(_normalise_hf_row, task_type=task_type))


def _class_label_decoders(features: Mapping[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """Per column, a function turning ClassLabel ints (or lists of them) into label names."""
    import datasets

    decoders: dict[str, Callable[[Any], Any]] = {}
    for column, feature in features.items():
        inner = getattr(feature, "feature", None)  # Sequence/List of ClassLabel (tags)
        if isinstance(feature, datasets.ClassLabel):
            decoders[column] = partial(_label_name, feature)
        elif isinstance(inner, datasets.ClassLabel):
            decoders[column] = lambda values, f=inner: [_label_name(f, v) for v in values or []]
    return decoders


def _label_name(feature: Any, value: Any) -> Any:
    """The name of a ClassLabel int; -1 (the usual "no label" of hidden test sets) becomes None."""
    if isinstance(value, int) and value < 0:
        return None
    if isinstance(value, int) and value < feature.num_classes:
        return feature.int2str(value)
    return value  # out of range: left for validation to report


def _with_class_label_names(
    manifest: Mapping[str, Any], features: Mapping[str, Any], columns: Mapping[str, str]
) -> Mapping[str, Any]:
    """Fill a missing ``labels`` from the label (or tag) column's ClassLabel names."""
    if manifest.get("labels") is not None:
        return manifest
    field = "tags" if manifest.get("type") == TaskType.SEQUENCE_LABELING else "label"
    feature = features.get(columns[field])
    feature = getattr(feature, "feature", feature)
    names = getattr(feature, "names", None)
    return {**manifest, "labels": list(names)} if names else manifest


def _normalise_hf_row(row: dict[str, Any], *, task_type: TaskType) -> dict[str, Any]:
    """Bring Hub conventions to ours: SQuAD-style answers, int class labels, text numbers."""
    answers = row.get("answers")
    if isinstance(answers, Mapping) and "answer_start" in answers:
        texts, starts = answers.get("text") or [], answers["answer_start"] or []
        if len(texts) != len(starts):
            raise RowError("answers.text and answers.answer_start differ in length", "answers")
        row["answers"] = [{"text": t, "start": s} for t, s in zip(texts, starts, strict=True)]
    label = row.get("label")
    if task_type is TaskType.CLASSIFICATION and type(label) is int:
        row["label"] = str(label)  # plain int labels (no ClassLabel) match labels like ["0", "1"]
    else:
        _coerce_label(row, task_type)
    return row
