"""Server-Sent Events for anything the database tracks: a ``progress`` event whenever its read
model changes, then one ``end`` once it reaches a final state (jobs and batches use it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from pydantic import BaseModel
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from service.models import JobState

# The OpenAPI entry of every events endpoint.
EVENT_STREAM = {200: {"content": {"text/event-stream": {}}, "description": "progress events"}}


def event_stream(read: Callable[[], BaseModel | None], interval_s: float) -> EventSourceResponse:
    """The SSE response for a job or a batch (they share the job states)."""
    return EventSourceResponse(progress_events(read, JobState.FINAL, interval_s), ping=15)


async def progress_events(
    read: Callable[[], BaseModel | None],
    final_states: frozenset[str] | set[str] | tuple[str, ...],
    interval_s: float,
) -> AsyncIterator[dict]:
    """Poll ``read`` (a blocking read of a model with ``id`` and ``state``) every ``interval_s``;
    the stream ends when ``read`` returns None (the thing was deleted) or a final state."""
    last = None
    while True:
        model = await run_in_threadpool(read)
        if model is None:
            return
        data = model.model_dump_json()
        if data != last:
            last = data
            yield {"event": "progress", "data": data}
        if model.state in final_states:
            yield {"event": "end", "data": json.dumps({"id": model.id, "state": model.state})}
            return
        await asyncio.sleep(interval_s)
