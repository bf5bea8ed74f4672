from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

RankMethod = Literal["taskemb", "textemb", "semb", "fused", "learned"]


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
