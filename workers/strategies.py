"""The one registry of transfer strategies: what each is called, what it does, whether its
sources train in a stage of their own before the target (so that stage runs once and serves
every seed), what it keeps of that stage and how that is keyed. Torch-free: the API's schemas,
the CLI's choices and the engine all derive from ``STRATEGIES``; a new strategy is one entry
here plus its training in ``workers.transfer.TRAINING`` (a test holds the two to the same names).
"""

from __future__ import annotations

from dataclasses import dataclass

# How the adapter strategy starts the target from a source adapter: "stack" merges it into the
# frozen encoder and trains a fresh target adapter over it; "continue" trains it on
ADAPTER_TRANSFERS = ("stack", "continue")

ADAPTER_KEEPS = (
    "one adapter per source in the adapter library, keyed by encoder and revision, the "
    "source's data hash, rows, epochs, seed and adapter settings"
)


@dataclass(frozen=True)
class TransferStrategy:
    name: str
    source_stage: bool  # sources train first, apart from the target
    description: str
    # "full": every stage fine-tunes the whole encoder; "adapter": the encoder stays frozen and
    # only adapters, fusion layers and heads train (its baseline is a fresh target adapter)
    kind: str = "full"
    # What the source stage leaves behind and how it is keyed
    keeps: str = "the source-trained encoder, in memory for this run's seeds"
    max_sources: int | None = None  # None: any number
    # fusion: over one adapter its attention has nothing to choose among
    min_sources: int = 1


STRATEGIES: dict[str, TransferStrategy] = {
    s.name: s
    for s in (
        TransferStrategy(
            "sequential",
            True,
            "each source in turn (its head dropped), then the target on that encoder",
        ),
        TransferStrategy(
            "multitask",
            True,
            "one stage over all sources (shared encoder, a head each; mixing decides the draws), "
            "then the target on that encoder",
        ),
        TransferStrategy(
            "joint",
            False,
            "the target trained together with its sources in one stage per seed (shared "
            "encoder, a head each): loss = L_target + Σ wᵢ·Lᵢ with mixing weights wᵢ, or the "
            "proportional/temperature samplers; scored on the target",
            keeps="nothing: the target trains with its sources afresh per seed",
        ),
        TransferStrategy(
            "adapter",
            True,
            "an adapter trained on the source over the frozen encoder (once, then reused), and "
            "the target's adapter over it: stacked on the merged source adapter, or continuing "
            "it (adapter.transfer)",
            kind="adapter",
            keeps=ADAPTER_KEEPS,
            max_sources=1,
        ),
        TransferStrategy(
            "fusion",
            True,
            "AdapterFusion (Pfeiffer et al. 2021): the sources' adapters, frozen, and a learned "
            "attention over their outputs in every layer, trained with the target's head",
            kind="adapter",
            keeps=ADAPTER_KEEPS,
            min_sources=2,
        ),
    )
}


def strategy(name: str) -> TransferStrategy:
    """The registered strategy ``name``; a ValueError naming the choices otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None


def check_sources(name: str, count: int) -> None:
    """A ValueError when strategy ``name`` cannot take ``count`` sources."""
    chosen = strategy(name)
    if chosen.max_sources is not None and count > chosen.max_sources:
        raise ValueError(
            f"strategy {name!r} takes at most {chosen.max_sources} source(s), got {count}; "
            "fusion combines several sources' adapters"
        )
    if count < chosen.min_sources:
        raise ValueError(
            f"strategy {name!r} takes at least {chosen.min_sources} sources, got {count}: it "
            "learns which source's adapter to attend to, so it needs adapters to choose among"
        )
