"""Streaming a task submission into a staging folder, with the size limit enforced as it arrives.

Multipart parts are written straight to ``<staging>/<upload id>/<split>.<format>`` (never under the
client's file name); a JSON body's rows are written there as JSONL, and so are a dataset
reference's once it is loaded. Nothing is kept if anything fails: the caller discards the staging
folder unless the task is accepted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from service.errors import Problem
from service.tasks.exceptions import (
    MalformedUpload,
    TaskInvalid,
    UnsupportedMediaType,
    UploadTooLarge,
)
from service.tasks.schemas import TaskHfCreate, TaskRowsCreate

SPLITS = ("train", "validation")
TEXT_FIELDS = ("name", "type", "labels", "metric", "fields")
MAX_FIELD_BYTES = 64 * 1024
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}
MEDIA_TYPES = {
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/json": "jsonl",
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
}
ACCEPTED = "JSONL (.jsonl), CSV (.csv) or TSV (.tsv)"


@dataclass
class StagedFile:
    split: str
    path: Path
    filename: str  # the client's file name, reduced to a safe base name (display only)
    format: str
    size: int = 0
    sha256: str = ""


OWNER_FILE = ".owner"  # "<host>:<pid>" of the process staging into the folder


@dataclass
class StagedUpload:
    """A submission waiting for validation: form fields plus files in one staging folder."""

    folder: Path
    source: str  # "upload" | "rows" | "hf"
    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, StagedFile] = field(default_factory=dict)
    hf: TaskHfCreate | None = None  # a dataset reference, not loaded yet (``service.tasks.hf``)

    @classmethod
    def create(cls, root: Path, source: str) -> StagedUpload:
        folder = root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        # Who stages here: a restarted server removes what its dead processes left behind
        (folder / OWNER_FILE).write_text(f"{socket.gethostname()}:{os.getpid()}")
        return cls(folder=folder, source=source)

    def manifest(self) -> dict[str, Any]:
        """The manifest ``load_files`` gets: labels may arrive comma-separated."""
        labels = self.fields.get("labels")
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        manifest = {k: self.fields.get(k) for k in ("name", "type", "metric")}
        if labels is not None:
            manifest["labels"] = labels
        if self.fields.get("fields"):
            manifest["fields"] = self.fields["fields"]
        return {k: v for k, v in manifest.items() if v not in (None, "")}

    def display_name(self, path: str) -> str | None:
        """What a problem's ``file`` shows the client: their file name, never a server path."""
        for staged in self.files.values():
            if path == str(staged.path):
                return staged.filename
        return None if path == "manifest" else path

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def remove_dead_staging(staging: Path, max_age_s: float) -> tuple[int, int]:
    """Remove staging folders left by dead requests: those of a process of this host that is
    gone (a ``kill -9`` mid-upload), and any older than ``max_age_s`` (another host's, or one
    whose owner is unknown). Returns (folders, bytes) removed."""
    if not staging.is_dir():
        return 0, 0
    host, now = socket.gethostname(), time.time()
    removed = size = 0
    for folder in staging.iterdir():
        if not folder.is_dir():
            continue
        try:
            age = now - folder.stat().st_mtime
        except FileNotFoundError:
            continue  # discarded meanwhile by its request
        owner_host, _, pid = _owner(folder).rpartition(":")
        dead = owner_host == host and pid.isdigit() and not _alive(int(pid))
        if dead or age > max_age_s:
            size += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed, size


def _owner(folder: Path) -> str:
    try:
        return (folder / OWNER_FILE).read_text().strip()
    except OSError:  # not written yet, or a folder from before owners were recorded
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


async def stage_request(
    request: Request, staging: Path, max_bytes: int, max_rows: int | None = None
) -> StagedUpload:
    """Stage a multipart or JSON submission; 413 over ``max_bytes`` (or, counted as lines while
    files stream in, ``max_rows``), 415 for other media types."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    media, params = parse_options_header(request.headers.get("content-type", ""))
    media = media.decode().lower()
    if media == "multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise MalformedUpload("multipart body without a boundary")
        return await _stage_multipart(request, staging, max_bytes, boundary, max_rows)
    if media == "application/json":
        return await _stage_json(request, staging, max_bytes)
    raise UnsupportedMediaType(
        f"unsupported content type {media or 'none'!r}: send multipart/form-data (fields name, "
        "type, labels, metric; files train and optional validation) or application/json with rows"
    )


async def _stage_multipart(
    request: Request, staging: Path, max_bytes: int, boundary: bytes, max_rows: int | None
) -> StagedUpload:
    staged = StagedUpload.create(staging, "upload")
    sink = _MultipartSink(staged, max_rows)
    parser = MultipartParser(boundary, sink.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise _too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
        sink.finish()
    except Exception:
        sink.close()
        staged.discard()
        raise
    return staged


async def _stage_json(request: Request, staging: Path, max_bytes: int) -> StagedUpload:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    try:
        rows = TaskRowsCreate.model_validate_json(bytes(body))
    except ValidationError as exc:
        if not _names_hf(exc):
            raise _not_a_task(exc) from None
        return stage_hf(_hf_body(bytes(body)), staging)
    return stage_rows(rows, staging)


def _names_hf(exc: ValidationError) -> bool:
    """Whether the body failed as rows because it has an ``hf`` key (a dataset reference)."""
    return any(e["type"] == "extra_forbidden" and e["loc"] == ("hf",) for e in exc.errors())


def _hf_body(body: bytes) -> TaskHfCreate:
    try:
        return TaskHfCreate.model_validate_json(body)
    except ValidationError as exc:
        raise _not_a_task(exc) from None


def _not_a_task(exc: ValidationError) -> TaskInvalid:
    problems = [
        Problem(field=".".join(map(str, e["loc"])) or None, message=e["msg"])
        for e in exc.errors()[:50]
    ]
    return TaskInvalid("the JSON body does not describe a task", problems=problems)


def stage_hf(request: TaskHfCreate, staging: Path) -> StagedUpload:
    """A dataset reference in a new staging folder; its rows are written there once loaded."""
    staged = StagedUpload.create(staging, "hf")
    staged.fields = request.model_dump(include={"name", "type", "labels", "metric"})
    staged.fields["fields"] = request.hf.fields  # the dataset's columns
    staged.fields = {k: v for k, v in staged.fields.items() if v is not None}
    staged.hf = request
    return staged


def stage_rows(rows: TaskRowsCreate, staging: Path) -> StagedUpload:
    """Write a JSON task's rows as JSONL files in a new staging folder."""
    staged = StagedUpload.create(staging, "rows")
    try:
        staged.fields = rows.model_dump(include=set(TEXT_FIELDS), exclude_none=True)
        for split in SPLITS:
            split_rows = getattr(rows, split)
            if split_rows is not None:
                staged.files[split] = write_rows(staged.folder, split, split_rows)
    except Exception:
        staged.discard()
        raise
    return staged


def write_rows(folder: Path, split: str, rows: Iterable[Any], filename: str = "") -> StagedFile:
    """``rows`` as ``<folder>/<split>.jsonl``; ``filename`` is what the client is shown."""
    staged = StagedFile(split, folder / f"{split}.jsonl", filename or split, "jsonl")
    digest = hashlib.sha256()
    with staged.path.open("wb") as handle:
        for row in rows:
            line = json.dumps(row, ensure_ascii=False).encode() + b"\n"
            digest.update(line)
            handle.write(line)
            staged.size += len(line)
    staged.sha256 = digest.hexdigest()
    return staged


class _MultipartSink:
    """python-multipart callbacks: text fields into memory, file parts onto disk."""

    def __init__(self, staged: StagedUpload, max_rows: int | None = None) -> None:
        self.staged = staged
        self.max_rows = max_rows
        self._lines = 0  # newlines in the file parts so far: rows, plus a header per CSV
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._field: str | None = None
        self._buffer: bytearray | None = None
        self._file: StagedFile | None = None
        self._handle = None
        self._digest = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename == b"" and name in SPLITS:
            return  # a browser's file input left blank: no file, not an empty one
        if filename is not None:
            self._open_file(name, filename.decode("utf-8", "replace"))
        elif name in TEXT_FIELDS:
            self._field, self._buffer = name, bytearray()
        elif name in SPLITS:
            raise TaskInvalid(
                f"'{name}' must be a file part",
                problems=[Problem(field=name, message="send the split as a file")],
            )
        else:
            expected = ", ".join((*TEXT_FIELDS, *SPLITS))
            message = f"unexpected form field {name!r} (expected {expected})"
            raise TaskInvalid(message, problems=[Problem(field=name, message=message)])

    def _open_file(self, name: str, filename: str) -> None:
        if name not in SPLITS:
            message = f"unexpected file field {name!r} (expected train or validation)"
            raise TaskInvalid(message, problems=[Problem(field=name, message=message)])
        if name in self.staged.files:
            message = f"more than one {name!r} file"
            raise TaskInvalid(message, problems=[Problem(field=name, message=message)])
        safe = _safe_filename(filename) or name
        media = self._headers.get("content-type", b"").decode("latin-1")
        fmt = _file_format(safe, media)
        self._file = StagedFile(name, self.staged.folder / f"{name}.{fmt}", safe, fmt)
        self.staged.files[name] = self._file
        self._handle = self._file.path.open("wb")
        self._digest = hashlib.sha256()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._handle is not None:
            self._count_rows(chunk)
            self._handle.write(chunk)
            self._digest.update(chunk)
            self._file.size += len(chunk)
        elif self._buffer is not None:
            self._buffer.extend(chunk)
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise UploadTooLarge(f"form field {self._field!r} exceeds {MAX_FIELD_BYTES} bytes")

    def _count_rows(self, chunk: bytes) -> None:
        """Refuse the upload as soon as its files hold more lines than the row limit allows
        (a header line per file aside), before any of it is parsed."""
        self._lines += chunk.count(b"\n")
        allowed = self.max_rows + len(self.staged.files) if self.max_rows else None
        if allowed is not None and self._lines > allowed:
            raise UploadTooLarge(f"the upload has more than {self.max_rows} rows (the limit)")

    def _part_end(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._file.sha256 = self._digest.hexdigest()
            self._handle = self._file = None
        elif self._field is not None:
            self.staged.fields[self._field] = self._text_value(self._field, bytes(self._buffer))
            self._field = self._buffer = None

    @staticmethod
    def _text_value(name: str, raw: bytes) -> Any:
        text = raw.decode("utf-8", "replace").strip()
        if name != "fields" or not text:
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            message = f"fields must be a JSON object mapping field names to columns ({exc.msg})"
            raise TaskInvalid(
                message, problems=[Problem(field="fields", message=message)]
            ) from None

    def finish(self) -> None:
        if self._handle is not None:
            raise MalformedUpload("the multipart body ended in the middle of a file")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _safe_filename(filename: str) -> str:
    """The base name only (no folders, either slash), printable, at most 255 characters."""
    base = PureWindowsPath(PurePosixPath(filename).name).name
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return "" if base in ("", ".", "..") else base[:255]


def _file_format(filename: str, media_type: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    media = media_type.split(";")[0].strip().lower()
    if media in MEDIA_TYPES:
        return MEDIA_TYPES[media]
    raise UnsupportedMediaType(
        f"unsupported file {filename!r} ({media or 'no content type'}): upload {ACCEPTED}"
    )


def _too_large(max_bytes: int) -> UploadTooLarge:
    return UploadTooLarge(f"upload exceeds the limit of {max_bytes} bytes")
