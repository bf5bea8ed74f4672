"""Request dependencies shared by every domain, as named types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from pydantic import Field
from sqlalchemy.orm import Session

from service.context import AppContext
from service.db import commit, rollback
from service.settings import Settings


def get_context(request: Request) -> AppContext:
    return request.app.state.context


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_settings(context: ContextDep) -> Settings:
    return context.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(context: ContextDep) -> Iterator[Session]:
    """The request's unit of work: commits when the handler returns, rolls back if it raises."""
    session = context.session_factory()
    try:
        yield session
        commit(session)
    except BaseException:
        rollback(session)
        raise
    finally:
        session.close()


# scope="function": the commit happens before the response is sent, so a client that reads
# right after a 201 sees the row, and a failing commit becomes a 500 rather than a lost write.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Ids and offsets are integer columns (32-bit on PostgreSQL): a larger number is a 422 naming the
# parameter, never an overflow deep in the driver (a 500).
MAX_DB_INT = 2**31 - 1
ResourceId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
DbId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]  # an id inside a request body
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
