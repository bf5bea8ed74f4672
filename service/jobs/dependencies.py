from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from service.auth.dependencies import CurrentOwner
from service.dependencies import ResourceId, SessionDep
from service.jobs import service
from service.models import Job


def visible_job(job_id: ResourceId, owner: CurrentOwner, session: SessionDep) -> Job:
    """The job, if the caller owns it (admins see all); 404 otherwise."""
    return service.visible(session, owner, job_id)


VisibleJob = Annotated[Job, Depends(visible_job)]
