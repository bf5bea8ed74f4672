"""Adapters over a frozen encoder, AdapterFusion over several, and the library of trained ones.

An adapter here is a LoRA module (``peft``) on each transformer layer's feed-forward output
projection: the place Pfeiffer et al. put their bottleneck adapter, and as a parallel low-rank
update of that projection it is the "parallel adapter at the FFN" that He et al. (2022) found
as strong as sequential adapters. ``peft`` is used because it follows current ``transformers``;
AdapterHub's ``adapters`` (which has bottleneck adapters and AdapterFusion) pins transformers 4.x.
``peft`` has no AdapterFusion, so ``AdapterFusion`` below is written here: a learned attention, in
every layer, of that layer's FFN output (query) over the adapters' outputs (keys and values),
as in Pfeiffer et al. (2021) — not a weighted merge of adapter weights.

``workers.adapter_library`` keeps trained source adapters on disk and reuses them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.data.schema import TaskData
from workers.encoder import transformer_layers
from workers.finetune import ProgressCallback, StageResult, TrainConfig, set_seed, train_stage
from workers.heads import TaskModel
from workers.strategies import ADAPTER_TRANSFERS


@dataclass(frozen=True)
class AdapterConfig:
    """How adapters are shaped and trained (the encoder stays frozen throughout)."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.1
    # A frozen encoder needs a larger step than full fine-tuning's 5e-5 (LoRA's usual range)
    learning_rate: float = 1e-3
    # The fusion layers and the target head (the adapters under them stay frozen)
    fusion_learning_rate: float = 1e-3
    # "stack": the source adapter is merged into the frozen encoder and a fresh target adapter
    # trains over it; "continue": the source adapter itself goes on training on the target
    transfer: str = "stack"

    def __post_init__(self) -> None:
        if self.transfer not in ADAPTER_TRANSFERS:
            choices = " or ".join(ADAPTER_TRANSFERS)
            raise ValueError(f"unknown adapter transfer {self.transfer!r}; choose {choices}")

    def to_dict(self) -> dict:
        return asdict(self)


def adapter_modules(encoder: nn.Module) -> list[str]:
    """The feed-forward output projection of every transformer layer (the last linear layer of
    each, in registration order: BERT's ``output.dense``), as names under ``encoder``."""
    layers = transformer_layers(encoder)
    names = {id(module): name for name, module in encoder.named_modules()}
    found = []
    for layer in layers:
        linears = [m for m in layer.modules() if isinstance(m, nn.Linear)]
        found.append(names[id(linears[-1])])
    return found


def add_adapter(encoder: PreTrainedModel, config: AdapterConfig) -> PeftModel:
    """``encoder`` (modified in place) wrapped with a fresh, trainable adapter; all else frozen."""
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=adapter_modules(encoder),
        bias="none",
    )
    with _quiet_peft():
        return get_peft_model(encoder, lora)


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    # peft 0.21 calls a transformers 5 method that warns of its own deprecation: nothing a
    # user can act on, and it would interleave with the CLI's progress
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield


def load_adapter(encoder: PreTrainedModel, path: Path, trainable: bool = False) -> PeftModel:
    """``encoder`` (modified in place) with the adapter saved at ``path``."""
    with _quiet_peft():
        return PeftModel.from_pretrained(encoder, str(path), is_trainable=trainable)


def train_adapter(
    task: TaskData,
    encoder: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    train: TrainConfig,
    adapter: AdapterConfig,
    seed: int,
    stage: str,
    progress: ProgressCallback | None = None,
    scored: bool = True,
) -> tuple[PeftModel, StageResult]:
    """Train a fresh head and the adapter of ``encoder`` (a fresh one is added to a plain
    encoder) on ``task``; returns the adapted encoder and the stage."""
    if not isinstance(encoder, PeftModel):
        set_seed(seed)  # the adapter's initial weights too are the seed's
        encoder = add_adapter(encoder, adapter)
    model = TaskModel(encoder)
    config = dataclasses.replace(train, learning_rate=adapter.learning_rate)
    result = train_stage(
        model,
        [task],
        tokenizer,
        config,
        seed=seed,
        evaluate_after=scored,
        stage=stage,
        progress=progress,
    )
    return encoder, result


class AdapterFusion(nn.Module):
    """Attention of a layer's output (query) over the adapters' outputs (keys, values).

    Initialised as Pfeiffer et al.'s: query and key small and random, value the identity, so
    training starts from the near-uniform mean of the adapters' outputs."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden, bias=False)
        for layer in (self.query, self.key):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.value.weight.copy_(torch.eye(hidden))

    def forward(self, layer_output: torch.Tensor, adapter_outputs: torch.Tensor) -> torch.Tensor:
        """``layer_output`` (..., hidden), ``adapter_outputs`` (..., adapters, hidden)."""
        query = self.query(layer_output).unsqueeze(-2)  # (..., 1, hidden)
        scores = (query * self.key(adapter_outputs)).sum(-1)  # (..., adapters)
        weights = torch.softmax(scores, dim=-1).unsqueeze(-1)
        return (weights * self.value(adapter_outputs)).sum(-2)


class FusedLinear(nn.Module):
    """A LoRA-adapted projection whose adapters are fused, not summed: each adapter's output
    (the projection plus that adapter's update) is one candidate for the fusion attention."""

    def __init__(self, lora_layer: nn.Module, adapters: list[str]) -> None:
        super().__init__()
        self.lora = lora_layer
        self.adapters = list(adapters)
        base = lora_layer.base_layer
        self.fusion = AdapterFusion(base.out_features).to(base.weight.device)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        lora = self.lora
        layer_output = lora.base_layer(inputs)
        outputs = [
            layer_output
            + lora.lora_B[name](lora.lora_A[name](lora.lora_dropout[name](inputs)))
            * lora.scaling[name]
            for name in self.adapters
        ]
        return self.fusion(layer_output, torch.stack(outputs, dim=-2))


def fused_encoder(encoder: PreTrainedModel, adapter_paths: list[Path]) -> PeftModel:
    """``encoder`` (modified in place) with every adapter loaded, frozen, and a trainable
    ``AdapterFusion`` in each layer over them."""
    if not adapter_paths:
        raise ValueError("fusion needs at least one adapter")
    targets = adapter_modules(encoder)
    names = [f"source{i}" for i in range(len(adapter_paths))]
    with _quiet_peft():
        model = PeftModel.from_pretrained(encoder, str(adapter_paths[0]), adapter_name=names[0])
        for name, path in zip(names[1:], adapter_paths[1:], strict=True):
            model.load_adapter(str(path), adapter_name=name)
    for param in model.parameters():
        param.requires_grad_(False)
    inner = model.base_model.model
    for target in targets:
        parent_name, _, child = target.rpartition(".")
        parent = inner.get_submodule(parent_name)
        setattr(parent, child, FusedLinear(getattr(parent, child), names))
    return model
