"""The adapter library: trained source adapters on disk, one folder per key, reused.

A key hashes everything that decides an adapter's weights (encoder and revision, the task's spec
and training rows, their number, epochs, seed, adapter and stage settings), so a second transfer
from the same source skips its source stage. A folder appears whole or not at all (trained into
a temporary folder, then renamed), and a lock per key makes a second process wanting the same
adapter wait for the first's training, then load it. Torch-free until something is trained: the
API lists and deletes adapters with it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workers.data.schema import TaskData

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from workers.adapters import AdapterConfig
    from workers.finetune import ProgressCallback, StageResult, TrainConfig


# How often a wait for another process's training of the same adapter tries the lock again
LOCK_POLL_S = 0.5


class AdapterBusy(RuntimeError):
    """The adapter is being trained (its key's lock is held)."""


@dataclass(frozen=True)
class StoredAdapter:
    """One trained adapter in the library, as ``list`` shows it."""

    key: str
    task: str
    encoder: str
    data_hash: str
    rows: int
    epochs: float
    seed: int
    settings: dict
    stage: dict  # the StageResult of its training (seconds, examples, params, memory)
    created_at: float
    path: Path

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


class AdapterLibrary:
    """Trained adapters under ``root``; those this instance trains and keys are of the encoder
    ``encoder_id`` (its name@revision)."""

    def __init__(self, root: Path, encoder_id: str) -> None:
        self.root = Path(root)
        self.encoder_id = encoder_id

    def key(self, task: TaskData, train: TrainConfig, adapter: AdapterConfig, seed: int) -> str:
        """What decides the adapter's weights, hashed."""
        payload = {
            "encoder": self.encoder_id,
            "data": _train_hash(task),
            "rows": len(task.train),
            "seed": seed,
            "train": _training_settings(train),
            "adapter": _adapter_settings(adapter),
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:24]

    def get_or_train(
        self,
        task: TaskData,
        encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        train: TrainConfig,
        adapter: AdapterConfig,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> tuple[Path, StageResult]:
        """The adapter's folder, trained first (on a copy of ``encoder``) unless stored; a
        stored one's stage comes back as it was measured, marked ``cached``."""
        key = self.key(task, train, adapter, seed)
        self.root.mkdir(parents=True, exist_ok=True)
        # One training per key: the others wait, then load it. A wait reports the adapter's
        # stage at step 0 now and then, so a job's progress callback can stop it (cancelled).
        waiting = (lambda: progress(f"adapter:{task.name}", 0, 1)) if progress else None
        with self._lock(key, waiting=waiting):
            import copy

            from workers.adapters import train_adapter
            from workers.finetune import StageResult

            stored = self.get(key)
            if stored is not None:
                return stored.path, dataclasses.replace(StageResult(**stored.stage), cached=True)
            self._clear_leftovers(key)  # of a training or deletion that was killed
            started = time.perf_counter()
            trained, stage = train_adapter(
                task,
                copy.deepcopy(encoder),
                tokenizer,
                train,
                adapter,
                seed,
                f"adapter:{task.name}",
                progress,
                scored=False,
            )
            stage.seconds = time.perf_counter() - started
            self._store(key, task, train, adapter, seed, trained, stage)
        return self.root / key, stage

    def get(self, key: str) -> StoredAdapter | None:
        """The stored adapter ``key``; None when absent or not whole (its metadata is written
        last, so a folder without readable metadata is a leftover, not an adapter)."""
        meta = self.root / key / "adapter.json"
        if key.startswith(".") or not meta.is_file():
            return None
        try:
            return StoredAdapter(**json.loads(meta.read_text()), path=self.root / key)
        except (ValueError, TypeError):
            return None

    def entries(self) -> list[StoredAdapter]:
        """Every stored adapter of any encoder, newest first (temporary folders left out)."""
        if not self.root.is_dir():
            return []
        found = [self.get(p.name) for p in self.root.iterdir() if p.is_dir()]
        return sorted((a for a in found if a), key=lambda a: -a.created_at)

    def delete(self, key: str) -> bool:
        """Remove one adapter; False when absent, ``AdapterBusy`` while it is being trained.
        It disappears at once (renamed aside, then removed). A transfer that already found it
        loads it per seed: deleting it under a running job fails that job."""
        if not key.isalnum():  # a key names a folder directly under root, nothing else
            return False
        if not (self.root / key).is_dir():
            return False
        with self._lock(key, wait=False):
            if self.get(key) is None:
                return False
            trash = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}.deleted-"))
            os.replace(self.root / key, trash / key)
            shutil.rmtree(trash, ignore_errors=True)
        return True

    @contextlib.contextmanager
    def _lock(
        self, key: str, wait: bool = True, waiting: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Hold ``key``'s lock. Without ``wait``, ``AdapterBusy`` if another holds it; with
        it, poll, calling ``waiting`` between tries (it may raise to give up)."""
        # Opened read-only (created if absent, readable by all) so that processes running as
        # other users share it
        fd = os.open(self.root / f".{key}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait:
                        raise AdapterBusy(
                            f"adapter {key} is being trained; try again later"
                        ) from None
                    if waiting is not None:
                        waiting()
                    time.sleep(LOCK_POLL_S)
            yield
        finally:
            os.close(fd)

    def _clear_leftovers(self, key: str) -> None:
        """Temporary folders of a killed training or deletion of ``key``, and a folder under
        its name that is not whole (the key's lock is held)."""
        for leftover in self.root.glob(f".{key}.*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        if (self.root / key).exists():
            shutil.rmtree(self.root / key, ignore_errors=True)

    def _store(self, key, task, train, adapter, seed, trained: PeftModel, stage) -> None:
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}."))
        try:
            trained.save_pretrained(str(staging))
            meta = {
                "key": key,
                "task": task.name,
                "encoder": self.encoder_id,
                "data_hash": _train_hash(task),
                "rows": len(task.train),
                "epochs": train.epochs,
                "seed": seed,
                "settings": {
                    "train": _training_settings(train),
                    "adapter": _adapter_settings(adapter),
                },
                "stage": stage.to_dict(),
                "created_at": time.time(),
            }
            # The metadata last: a folder with it is whole (get reads nothing else)
            (staging / "adapter.json").write_text(json.dumps(meta, indent=2, default=str))
            staging.chmod(0o755)  # mkdtemp's 0700 would hide it from an API of another user
            staging.rename(self.root / key)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _train_hash(task: TaskData) -> str:
    """The task's spec and training rows (its validation rows do not change the weights)."""
    return TaskData(task.spec, {"train": task.train}).content_hash()


# What the first adapters were keyed by. A setting added to TrainConfig or AdapterConfig later
# joins a key only when it is not at its default, so adding one does not orphan the library's
# stored adapters (they were all trained at what is now its default).
_KEYED_TRAIN = {
    "epochs", "batch_size", "weight_decay", "warmup_ratio", "max_grad_norm", "max_steps",
    "features", "precision", "unfreezing",
}  # fmt: skip
_KEYED_FEATURES = {"max_length", "qa_max_length", "doc_stride"}
_KEYED_ADAPTER = {"rank", "alpha", "dropout", "learning_rate"}
# Not part of a key: where or how a stage reports; the adapter stage's rate is the adapter's;
# how a transfer then uses a source adapter (stacked, continued, fused) does not change it
_UNKEYED = {"device", "report_scoring", "eval_batch_size", "transfer", "fusion_learning_rate"}


def _training_settings(train: TrainConfig) -> dict:
    """The settings of an adapter's stage that decide its weights."""
    return _keyed(train, _KEYED_TRAIN, _UNKEYED | {"learning_rate"})


def _adapter_settings(adapter: AdapterConfig) -> dict:
    return _keyed(adapter, _KEYED_ADAPTER, _UNKEYED)


def _keyed(settings, always: set[str], never: set[str]) -> dict:
    """``settings``' fields for a key: ``always`` ones, and others where not at their default."""
    data = {}
    for spec in dataclasses.fields(settings):
        value = getattr(settings, spec.name)
        if spec.name in never:
            continue
        default = (
            spec.default_factory()
            if spec.default_factory is not dataclasses.MISSING
            else spec.default
        )
        if spec.name in always or value != default:
            nested = dataclasses.is_dataclass(value)
            data[spec.name] = _keyed(value, _KEYED_FEATURES, set()) if nested else value
    return data
