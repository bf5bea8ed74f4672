from __future__ import annotations

from service.errors import Conflict, NotFound


class JobNotFound(NotFound):
    code = "job_not_found"
    description = "No such job (or not visible to this key)"


class JobFinished(Conflict):
    code = "job_finished"
    description = "The job has already finished"


class JobCancelled(Exception):
    """Raised inside a running job (at its next step) when cancellation was requested."""


class JobLost(Exception):
    """Raised inside a running job whose row was taken over by another attempt."""


class JobInterrupted(Exception):
    """Raised inside a running job when its worker shuts down; the job is queued again."""
