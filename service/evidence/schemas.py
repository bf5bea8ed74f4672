from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

SET_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"


class EvidenceSetRead(BaseModel):
    """An evidence set's summary: what was fine-tuned, how, where from, and how much."""

    name: str
    transfer_model: str
    protocol: dict[str, Any]
    origin: str  # "sweep" (shipped with the deployment) or "import"
    note: str | None
    default: bool  # ranks this transfer model's requests that name no set
    summary: dict[str, Any]  # rows, targets, sources, seeds, pairs, gain_basis, metrics
    created_at: datetime


class EvidenceRowRead(BaseModel):
    source: str
    target: str
    seed: int
    score: float
    baseline: float
    gain: float
    metric: str


class EvidenceSetDetail(EvidenceSetRead):
    """A set's summary and a page of its rows."""

    rows: list[EvidenceRowRead]
    total: int
    limit: int
    offset: int


class EvidenceSetUpdate(BaseModel):
    default: bool = Field(
        description="Make it a default set of its transfer model (defaults of another protocol "
        "stop being defaults), or stop it being one"
    )


class EvidenceUsed(BaseModel):
    """Which measured transfers a recommendation rests on."""

    transfer_model: str  # the model the ranking is for (normalised)
    sets: list[str]  # evidence sets fitted on (all of one protocol)
    protocol: dict[str, Any] | None  # their protocol
    own_transfers: int  # finished transfer runs of this owner (or shared) that counted
    targets: int  # measured targets the ranker was fitted on
    pairs: int  # measured (source, target) pairs
    used: bool  # False: the ranking rests on embeddings alone (``reason`` says why)
    reason: str | None = None
