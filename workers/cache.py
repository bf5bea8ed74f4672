"""On-disk cache of task embeddings keyed by data hash, encoder, method and settings.

A second ``similar`` over the same library recomputes nothing; any change to the data, encoder
revision or settings is a different key. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from workers.embeddings import TaskEmbedding
from workers.encoder import EncoderRef


def cache_key(data_hash: str, encoder: EncoderRef, method: str, settings: dict) -> str:
    """A stable key for one embedding."""
    payload = {"data": data_hash, "encoder": encoder.id, "method": method, "settings": settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :32
    ]


class EmbeddingCache:
    """Embeddings as ``<key>.npz`` (vectors) plus ``<key>.json`` (metadata) in one folder;
    ``seeds``: read-only folders of the same layout consulted after it (a repository's
    committed embeddings, say), never written to."""

    def __init__(self, root: Path, seeds: tuple[Path, ...] | list[Path] = ()) -> None:
        self.root = Path(root)
        self.seeds = tuple(Path(seed) for seed in seeds)

    def get(self, key: str) -> TaskEmbedding | None:
        for folder in (self.root, *self.seeds):
            meta_path, vectors_path = self._paths(key, folder)
            if meta_path.exists() and vectors_path.exists():
                return self._read(meta_path, vectors_path)
        return None

    def _read(self, meta_path: Path, vectors_path: Path) -> TaskEmbedding:
        meta = json.loads(meta_path.read_text())
        with np.load(vectors_path) as vectors:
            components = {name: vectors[name] for name in meta["components"]}
        return TaskEmbedding(
            task=meta["task"],
            method=meta["method"],
            encoder=EncoderRef(meta["encoder"]["name"], meta["encoder"]["revision"], ""),
            components=components,
            num_examples=meta["num_examples"],
            settings=meta["settings"],
        )

    def put(self, key: str, embedding: TaskEmbedding) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        meta_path, vectors_path = self._paths(key)
        meta = {
            "task": embedding.task,
            "method": embedding.method,
            # name@revision is the encoder's identity; its path is only where this machine
            # found it, so it stays out of a cache that may be shared or committed.
            "encoder": {"name": embedding.encoder.name, "revision": embedding.encoder.revision},
            "components": list(embedding.components),
            "num_examples": embedding.num_examples,
            "settings": embedding.settings,
        }
        _atomic_write(vectors_path, lambda f: np.savez(f, **embedding.components))
        _atomic_write(meta_path, lambda f: f.write(json.dumps(meta, default=str).encode()))

    def _paths(self, key: str, folder: Path | None = None) -> tuple[Path, Path]:
        folder = folder or self.root
        return folder / f"{key}.json", folder / f"{key}.npz"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
