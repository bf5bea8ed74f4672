"""How a committed job reaches a worker: a thread in this process, or a Celery broker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from service.settings import Settings

if TYPE_CHECKING:
    from service.context import AppContext


class Dispatcher(Protocol):
    def start(self, context: AppContext) -> None:
        """Begin work (worker threads for the embedded dispatcher; nothing for Celery)."""

    def stop(self) -> None: ...

    def enqueue(self, job_id: int, queue: str, delay: float = 0.0) -> None:
        """Hand a committed job to a worker (called only after the job's row commits)."""

    def ping(self) -> bool:
        """Whether jobs can currently reach a worker (for /readyz)."""

    def describe(self) -> str: ...


def default_dispatcher(settings: Settings) -> Dispatcher:
    """Celery when a broker is configured, else worker threads inside this process."""
    if settings.broker_url:
        from service.jobs.celery_app import CeleryDispatcher

        return CeleryDispatcher(settings)
    from service.jobs.embedded import EmbeddedDispatcher

    return EmbeddedDispatcher(settings.embedded_workers)
