"""The one registry of transfer strategies: what each is called, what it does, and whether its
sources train in a stage of their own before the target (so that stage runs once and its encoder
serves every seed). Torch-free: the API's schemas, the CLI's choices and the engine all derive
from ``STRATEGIES``; a new strategy is one entry here plus its training in ``workers.transfer``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TransferStrategy:
    name: str
    source_stage: bool  # sources train first, apart from the target
    description: str


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
