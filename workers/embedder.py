"""Embedding tasks with one encoder, through the on-disk cache.

The encoder is loaded only on the first cache miss, so ranking a library whose embeddings are
cached loads no model at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from workers.cache import EmbeddingCache, cache_key
from workers.data.schema import TaskData
from workers.embeddings import (
    METHODS,
    EmbeddingConfig,
    ProgressCallback,
    TaskEmbedding,
    compute_taskemb,
    compute_textemb,
)
from workers.encoder import EncoderRef, load_encoder


class Embedder:
    """Computes (or fetches from the cache) a task's embeddings by each method."""

    def __init__(
        self, ref: EncoderRef, config: EmbeddingConfig, cache: EmbeddingCache | None = None
    ) -> None:
        self.ref = ref
        self.config = config
        self.cache = cache
        self._loaded = None

    def embed(
        self,
        task: TaskData,
        methods: Iterable[str] = METHODS,
        progress: ProgressCallback | None = None,
        label_donor: TaskData | None = None,
    ) -> dict[str, TaskEmbedding]:
        """Embeddings of ``task`` by each of ``methods`` (``taskemb``, ``textemb``, ``semb``);
        ``label_donor`` trains the head that labels an unlabelled task's TaskEmb
        (``compute_taskemb``)."""
        methods = list(methods)
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
        keys = self._keys(task, methods, label_donor)
        result = self._cached(keys)
        missing = [m for m in methods if m not in result]
        if any(m in ("textemb", "semb") for m in missing):
            result.update(self._compute_text(task, progress))
        if "taskemb" in missing:
            result["taskemb"] = self._compute_taskemb(task, progress, label_donor)
        if self.cache:
            for m in missing:
                self.cache.put(keys[m], result[m])
        return {m: result[m] for m in methods}

    def cached(self, task: TaskData, methods: Iterable[str] = METHODS) -> dict | None:
        """``task``'s embeddings by ``methods`` when the cache holds every one; None otherwise
        (nothing is computed, nothing written)."""
        methods = list(methods)
        found = self._cached(self._keys(task, methods, None))
        return {m: found[m] for m in methods} if all(m in found for m in methods) else None

    def _keys(self, task: TaskData, methods: list[str], label_donor) -> dict[str, str]:
        data_hash = embedding_data_hash(task)
        settings = self.config.to_dict()
        if label_donor is not None and self.config.train_epochs > 0:  # it trains the head:
            # an unlabelled task's TaskEmb depends on it (its text embeddings do not)
            settings["label_donor"] = embedding_data_hash(label_donor)
        return {m: cache_key(data_hash, self.ref, m, _relevant(settings, m)) for m in methods}

    def _cached(self, keys: dict[str, str]) -> dict[str, TaskEmbedding]:
        found = {m: self.cache.get(k) for m, k in keys.items()} if self.cache else {}
        # A hit was keyed on this encoder's id; it gets this machine's path back (not stored).
        return {m: replace(e, encoder=self.ref) for m, e in found.items() if e is not None}

    def _encoder(self):
        if self._loaded is None:
            self._loaded = load_encoder(self.ref)
        return self._loaded

    def _compute_text(self, task: TaskData, progress) -> dict[str, TaskEmbedding]:
        encoder, tokenizer = self._encoder()
        return compute_textemb(task, encoder, tokenizer, self.ref, self.config, progress)

    def _compute_taskemb(self, task: TaskData, progress, label_donor) -> TaskEmbedding:
        encoder, tokenizer = self._encoder()
        return compute_taskemb(
            task, encoder, tokenizer, self.ref, self.config, progress, label_donor
        )


def embedding_data_hash(task: TaskData) -> str:
    """The hash of what an embedding reads: the spec and the training rows. Validation and test
    rows never reach it, so a task loaded with or without them (the service keeps train and
    validation, the CLI every split) shares its cached embeddings."""
    return TaskData(task.spec, {"train": task.train}).content_hash()


def _relevant(settings: dict, method: str) -> dict:
    """Settings that change ``method``'s vector (TextEmb does not depend on head training).

    fp32 leaves no trace in the key, so vectors cached before precision was a setting keep
    theirs."""
    ignored = {"precision"} if settings.get("precision") == "fp32" else set()
    if method != "taskemb":
        ignored |= {"head_training", "train_epochs", "learning_rate", "labels", "label_donor"}
    return {k: v for k, v in settings.items() if k not in ignored}
