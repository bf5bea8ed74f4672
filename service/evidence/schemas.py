from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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


class CalibrationProtocol(BaseModel):
    """How each donor is measured: results/run-matrix-10k.sh's protocol by default (sources on
    all their rows up to 10,000 for one full epoch; targets on 200 rows, 3 epochs)."""

    source_rows: int = Field(10_000, ge=1, description="cap on a source's training rows")
    source_epochs: float = Field(1.0, gt=0, le=20)
    target_rows: int = Field(200, ge=1)
    eval_rows: int = Field(200, ge=1, description="validation rows scored per probe target")
    target_epochs: float = Field(3.0, gt=0, le=20)
    batch_size: int = Field(16, ge=1, le=512)
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    max_length: int = Field(64, ge=8, le=512)


class CalibrationCreate(BaseModel):
    transfer_model: str | None = Field(
        None, max_length=300, description="the model fine-tuned (default: the service's encoder)"
    )
    sources: Literal["missing", "all"] | list[str] = Field(
        "missing",
        description="library tasks to measure: those without a donor record for the transfer "
        "model (missing), every one (all), or these names",
    )
    probes: list[str] | None = Field(
        None, description="probe targets (default: the calibration_probes setting)"
    )
    seeds: list[int] = Field([0, 1], min_length=2, max_length=8)
    protocol: CalibrationProtocol = CalibrationProtocol()
    evidence_set: str | None = Field(
        None, pattern=SET_NAME, description="where the results go (default calibration-<model>)"
    )
    dry_run: bool = Field(False, description="only estimate the cost")


class CalibrationCost(BaseModel):
    """What a calibration will run, and roughly how long on the dev machine's one core."""

    sources_to_train: int  # source stages not already checkpointed
    baselines: int
    target_runs: int
    examples: int  # training examples over every stage, in 64-token-sequence equivalents
    seconds: float


class CalibrationRead(BaseModel):
    evidence_set: str
    transfer_model: str
    probes: list[str]
    sources: list[str]
    seeds: list[int]
    cost: CalibrationCost
    job_id: int | None  # None for a dry run, or when nothing is left to measure


class Coverage(BaseModel):
    """Library tasks with a donor record (measured as a source) in a transfer model's default
    evidence sets, or the sets asked for."""

    transfer_model: str
    sets: list[str]
    library: int
    with_record: int
    missing: list[str]
