"""ORM models, one module per table; importing this package registers them all."""

from service.models.api_key import ApiKey
from service.models.base import Base, utcnow
from service.models.batch import Batch
from service.models.embedding import Embedding
from service.models.evidence_row import EvidenceRow
from service.models.evidence_set import EvidenceOrigin, EvidenceSet
from service.models.job import Job, JobKind, JobPriority, JobState
from service.models.library_version import LibraryVersion
from service.models.owner import Owner
from service.models.task import Task, TaskSource, TaskStatus
from service.models.task_file import TaskFile
from service.models.transfer_result import TransferResult
from service.models.transfer_run import TransferRun

__all__ = [
    "ApiKey",
    "Base",
    "Batch",
    "Embedding",
    "EvidenceOrigin",
    "EvidenceRow",
    "EvidenceSet",
    "Job",
    "JobKind",
    "JobPriority",
    "JobState",
    "LibraryVersion",
    "Owner",
    "Task",
    "TaskFile",
    "TaskSource",
    "TaskStatus",
    "TransferResult",
    "TransferRun",
    "utcnow",
]
