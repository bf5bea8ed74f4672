from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from service.evidence.schemas import EvidenceUsed
from workers.selection.methods import SERVED

RankMethod = Literal[SERVED]  # type: ignore[valid-type]  # the served methods of the registry


class RankedTask(BaseModel):
    """One library task in a ranking: the same shape as ``taskrec similar --json``, plus ids."""

    task: str  # name
    task_id: int
    type: str
    score: float  # RRF score (similarity methods) or blended percentile (learned); higher first
    components: dict[str, float]  # evidence: cosine per component (and per-method RRF if fused)


class LibraryCoverage(BaseModel):
    total: int  # library tasks (of the requested type)
    ready: int  # of those, how many have embeddings by this encoder and method
    complete: bool


class Recommendations(BaseModel):
    task_id: int
    task: str
    method: RankMethod
    model: str
    encoder_id: str
    k: int
    type: str | None
    library: LibraryCoverage
    ranking: list[RankedTask]
    note: str | None = None  # e.g. how much of the library is not ready yet
    # The model the user will fine-tune, whose measured transfers ranked this (learned), and
    # exactly which evidence that was; None for the methods that read embeddings alone
    transfer_model: str | None = None
    evidence: EvidenceUsed | None = None
    # This method's leave-one-target-out record in the request's scope (within its type when
    # ?type= is given) from the ranker file's saved evaluation: {"rho", "regret@3", ...}
    evaluation: dict[str, float | None] = {}


class MethodEvidence(BaseModel):
    """One ranking method, what it reads, and how it measured against held-out transfers."""

    method: str
    served: bool  # can be asked for with ``?method=``; the rest are the evaluation's yardsticks
    default: bool
    description: str = ""
    reads: list[str] = []  # embedding methods it needs
    learns: bool = False  # fitted on measured transfers (evidence sets, finished transfers)
    # scope ("all", "within") -> {"targets", "rho", "ndcg", "regret@1", "regret@3", ...}
    evaluation: dict[str, dict[str, float | None]]


class Methods(BaseModel):
    # TASKREC_DEFAULT_METHOD: a method, or "best" (then `best`, or `best_within_type` when a
    # request keeps to one type; the method flagged `default` is the one used without ?type=)
    default: str
    best: str | None  # the served method with the lowest mean ρ over all targets (Regret@3 ties)
    best_within_type: str | None  # the same, ranking only sources of the target's own type
    evaluated_on: str | None  # where the numbers come from (the ranker file), None without one
    # the transfer model whose measured transfers the numbers are about (normalised): requests
    # about another model are shown no record
    evaluated_for: str | None = None
    methods: list[MethodEvidence]
