"""FAISS indexes over library task vectors: one per (encoder id, method, component).

Each index holds L2-normalised vectors keyed by task id, so inner product is cosine and a task is
added or removed without a rebuild. Up to ``exact_max`` tasks it is an exact scan
(``IndexIDMap2`` over ``IndexFlatIP``); above that an inverted file (``IndexIVFFlat``, √n lists
trained by k-means when the index is built, ``nprobe`` of them searched) keeps a query's cost
far below a full scan of a 100,000-task library. ``bench/recommend.py`` measures its recall
against the exact ranking. Files live in
``<data_dir>/indexes/<encoder>/<method>.<component>.faiss`` with a JSON sidecar recording the
library version they reflect; the database's ``library_versions`` row says which version is
current, so a missing or stale file is rebuilt from the database. Vectors from different encoders
live in different folders and are never searched together.

Searches read an immutable snapshot: an update builds a new index and swaps it in, so concurrent
searches need no lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from service.artifacts import atomic_write, slug

log = logging.getLogger(__name__)

IndexKey = tuple[str, str, str]  # (encoder id, method, component)


@dataclass(frozen=True)
class Snapshot:
    """One index as of one library version; never mutated once published."""

    key: IndexKey
    version: int
    dim: int
    index: faiss.IndexIDMap2
    tasks: dict[int, tuple[str, str]]  # task id -> (name, type)
    by_type: dict[str, np.ndarray] = field(default_factory=dict)  # type -> task ids (int64)
    nprobe: int = 32  # inverted lists searched (approximate indexes only)

    @property
    def exact(self) -> bool:
        return not isinstance(self.index, faiss.IndexIVF)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(
        self,
        vector: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None,
        exclude: int | Collection[int] | None,
        threads: int | None = None,
    ) -> list[tuple[int, float]]:
        """Up to ``k`` (task id, cosine) pairs, best first, among ``allowed`` ids if given and
        never the ``exclude`` one(s).

        ``threads``: FAISS's OpenMP threads for this search. A server runs one search per
        request thread; OpenMP teams on top of those oversubscribe the cores (on 2 busy cores
        a 2-thread search of 100,000 vectors took 3x the CPU of a 1-thread one). The setting
        belongs to the calling thread, so it is made here, not once per process.
        """
        if self.size == 0 or k <= 0:
            return []
        if threads:
            faiss.omp_set_num_threads(threads)
        query = normalised(vector.reshape(1, -1))
        excluded = sorted(self._present(exclude))  # FAISS scans faster with no selector
        selector = None
        if allowed is not None:
            ids = allowed[~np.isin(allowed, excluded)] if excluded else allowed
            if ids.size == 0:
                return []
            selector = faiss.IDSelectorBatch(ids)
        elif excluded:
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.asarray(excluded, "int64")))
        params = self._parameters(selector, allowed)
        scores, ids = self.index.search(query, min(k, self.size), params=params)  # (1, k) each
        found = ids[0] >= 0
        return list(zip(ids[0][found].tolist(), scores[0][found].tolist(), strict=True))

    def _present(self, exclude: int | Collection[int] | None) -> set[int]:
        ids = {exclude} if isinstance(exclude, int) else set(exclude or ())
        return {i for i in ids if i in self.tasks}

    def _parameters(self, selector, allowed: np.ndarray | None):
        if self.exact:
            return faiss.SearchParameters(sel=selector) if selector is not None else None
        # A filter that keeps a fraction of the library: search proportionally more lists, so
        # about as many allowed vectors are scanned as without a filter.
        share = 1.0 if allowed is None else max(allowed.size, 1) / max(self.size, 1)
        nprobe = min(self.index.nlist, int(np.ceil(self.nprobe / share)))
        return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)

    def count(
        self, task_type: str | None = None, *, exclude: int | Collection[int] | None = None
    ) -> int:
        """How many tasks (of ``task_type``) this index holds, ``exclude`` not counted."""
        ids = self.by_type.get(task_type, ()) if task_type else self.tasks
        left_out = [
            i for i in self._present(exclude) if not task_type or self.tasks[i][1] == task_type
        ]
        return len(ids) - len(left_out)

    def vector(self, task_id: int) -> np.ndarray | None:
        if task_id not in self.tasks:
            return None
        return self.index.reconstruct(task_id)


@dataclass
class IndexDelta:
    """The library change of one committed transaction, for one encoder."""

    encoder_id: str
    old_version: int
    new_version: int
    remove: set[int] = field(default_factory=set)
    add: dict[tuple[str, str], dict[int, np.ndarray]] = field(default_factory=dict)
    tasks: dict[int, tuple[str, str]] = field(default_factory=dict)  # added: (name, type)


class IndexStore:
    """Loads, searches, updates and rebuilds the indexes of one data directory."""

    def __init__(self, root: Path, *, exact_max: int = 200_000, nprobe: int = 32) -> None:
        self.root = Path(root)
        self.exact_max, self.nprobe = exact_max, nprobe
        self._snapshots: dict[IndexKey, Snapshot] = {}
        self._locks: dict[IndexKey, threading.Lock] = {}
        self._guard = threading.Lock()

    def snapshot(self, key: IndexKey, version: int, loader) -> Snapshot:
        """The index for ``key`` at ``version``: cached, else from disk, else rebuilt.

        ``loader()`` returns ``(ids, vectors, tasks, dim)`` from the database for a rebuild.
        """
        cached = self._snapshots.get(key)
        if cached is not None and cached.version == version:
            return cached
        with self._lock(key), self._file_lock(key):
            cached = self._snapshots.get(key)
            if cached is not None and cached.version == version:
                return cached
            snapshot = self._read(key)
            if snapshot is None or snapshot.version != version or not self._fits(snapshot):
                snapshot = self._rebuild(key, version, *loader())
            self._snapshots[key] = snapshot
            return snapshot

    def apply(self, delta: IndexDelta) -> None:
        """Apply a committed change to every index of its encoder, or drop those it cannot fix."""
        keys = set(self._keys_on_disk(delta.encoder_id))
        keys |= {k for k in self._snapshots if k[0] == delta.encoder_id}
        keys |= {(delta.encoder_id, m, c) for m, c in delta.add}
        for key in keys:
            with self._lock(key), self._file_lock(key):
                current = self._snapshots.get(key) or self._read(key)
                if current is None:
                    continue  # never built: the first search builds it
                if current.version != delta.old_version:
                    self._drop(key)  # missed a change: rebuilt from the database when next used
                    continue
                updated = _updated(current, delta)
                if not self._fits(updated):
                    self._drop(key)  # grew past (or shrank under) exact_max: rebuilt when used
                    continue
                self._write(updated)
                self._snapshots[key] = updated

    def rebuild(self, key: IndexKey, version: int, ids, vectors, tasks, dim: int) -> Snapshot:
        with self._lock(key), self._file_lock(key):
            snapshot = self._rebuild(key, version, ids, vectors, tasks, dim)
            self._snapshots[key] = snapshot
            return snapshot

    def _rebuild(self, key, version, ids, vectors, tasks, dim) -> Snapshot:
        matrix = normalised(np.vstack(vectors)) if ids else np.zeros((0, dim), "float32")
        index = new_index(matrix, self.exact_max)
        if ids:
            index.add_with_ids(matrix, np.asarray(ids, dtype="int64"))
        snapshot = _snapshot(key, version, dim, index, dict(tasks), self.nprobe)
        self._write(snapshot)
        log.info("rebuilt index %s at version %s (%s vectors)", key, version, snapshot.size)
        return snapshot

    def _fits(self, snapshot: Snapshot) -> bool:
        """Exact below ``exact_max``, approximate above (a changed setting rebuilds)."""
        return snapshot.exact == (snapshot.size <= self.exact_max)

    # -- files ------------------------------------------------------------------------------

    def _paths(self, key: IndexKey) -> tuple[Path, Path]:
        encoder_id, method, component = key
        folder, name = self.root / slug(encoder_id), slug(f"{method}.{component}", 40)
        return folder / f"{name}.faiss", folder / f"{name}.json"

    def _keys_on_disk(self, encoder_id: str) -> Iterator[IndexKey]:
        folder = self.root / slug(encoder_id)
        for meta_path in folder.glob("*.json") if folder.is_dir() else []:
            try:
                meta = json.loads(meta_path.read_text())
                yield (meta["encoder_id"], meta["method"], meta["component"])
            except (OSError, ValueError, KeyError):
                continue

    def _read(self, key: IndexKey) -> Snapshot | None:
        index_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
            index = faiss.read_index(str(index_path))
        except (OSError, ValueError, RuntimeError):
            return None
        tasks = {int(i): (n, t) for i, (n, t) in meta["tasks"].items()}
        if index.ntotal != len(tasks):
            return None  # torn pair of files: rebuild
        return _snapshot(key, int(meta["version"]), int(meta["dim"]), index, tasks, self.nprobe)

    def _write(self, snapshot: Snapshot) -> None:
        index_path, meta_path = self._paths(snapshot.key)
        encoder_id, method, component = snapshot.key
        meta = {
            "encoder_id": encoder_id,
            "method": method,
            "component": component,
            "version": snapshot.version,
            "dim": snapshot.dim,
            "tasks": {str(i): list(v) for i, v in snapshot.tasks.items()},
        }
        blob = faiss.serialize_index(snapshot.index)
        atomic_write(index_path, lambda h: h.write(blob.tobytes()))
        atomic_write(meta_path, lambda h: h.write(json.dumps(meta).encode()))

    def _drop(self, key: IndexKey) -> None:
        self._snapshots.pop(key, None)
        for path in self._paths(key):
            path.unlink(missing_ok=True)

    def _lock(self, key: IndexKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    @contextmanager
    def _file_lock(self, key: IndexKey) -> Iterator[None]:
        """Serialises writers across processes (API and workers share the data directory)."""
        index_path, _ = self._paths(key)
        index_path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{index_path}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def new_index(matrix: np.ndarray, exact_max: int) -> faiss.Index:
    """An empty index for ``matrix``'s vectors: exact up to ``exact_max`` rows, else an inverted
    file with √n lists trained on ``matrix`` (the caller adds the vectors with their ids)."""
    rows, dim = matrix.shape
    if rows <= exact_max:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    lists = max(1, int(np.sqrt(rows)))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.max_points_per_centroid = 64  # k-means on a sample: a rebuild takes seconds
    index.train(matrix)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove and reconstruct by id
    return index


def normalised(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero: cosine 0, as the engine has it)."""
    matrix = np.ascontiguousarray(matrix, dtype="float32").copy()
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


def _snapshot(key, version, dim, index, tasks, nprobe: int = 32) -> Snapshot:
    by_type: dict[str, list[int]] = {}
    for task_id, (_, task_type) in tasks.items():
        by_type.setdefault(task_type, []).append(task_id)
    arrays = {t: np.asarray(sorted(ids), dtype="int64") for t, ids in by_type.items()}
    return Snapshot(key, version, dim, index, tasks, arrays, nprobe)


def _updated(current: Snapshot, delta: IndexDelta) -> Snapshot:
    """A new snapshot: ``current`` minus removed (and replaced) tasks plus the added vectors."""
    index = faiss.clone_index(current.index)
    added = delta.add.get(current.key[1:], {})
    gone = (delta.remove | set(added)) & set(current.tasks)
    if gone:
        index.remove_ids(np.asarray(sorted(gone), dtype="int64"))
    tasks = {i: v for i, v in current.tasks.items() if i not in gone}
    if added:
        ids = sorted(added)
        index.add_with_ids(
            normalised(np.vstack([added[i] for i in ids])), np.asarray(ids, dtype="int64")
        )
        tasks.update({i: delta.tasks[i] for i in ids})
    return _snapshot(current.key, delta.new_version, current.dim, index, tasks, current.nprobe)
