"""The embedded default: worker threads inside ``taskrec serve`` that poll the jobs table.

``enqueue`` only wakes the threads: the table is the queue, so a job committed while the
process was down is found on the next start, and a job left running by a crash is taken back
by the reaper once its heartbeat is stale.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from service.db import unit_of_work
from service.jobs import repository
from service.jobs.runner import JobRunner, reap_stale
from service.models import utcnow

if TYPE_CHECKING:
    from service.context import AppContext

log = logging.getLogger(__name__)


class EmbeddedDispatcher:
    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._context: AppContext | None = None
        self._last_reap = 0.0

    def describe(self) -> str:
        return f"embedded ({self.workers} worker thread{'s' if self.workers != 1 else ''})"

    def start(self, context: AppContext) -> None:
        # The workers' own pool: a burst of requests can never fail a running job
        context = context.with_own_pool(self.workers + 1)
        self._context = context
        self._stopping.clear()
        for i in range(self.workers):
            runner = JobRunner(context, f"{context.name}/embedded-{i}", self._stopping)
            thread = threading.Thread(
                target=self._loop, args=(runner,), name=f"taskrec-worker-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Interrupt running jobs at their next step (they are queued again) and join."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self._context is not None:
            self._context.engine.dispose()

    def enqueue(self, job_id: int, queue: str, delay: float = 0.0) -> None:
        self._wake.set()

    def ping(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def _loop(self, runner: JobRunner) -> None:
        context = runner.context
        while not self._stopping.is_set():
            try:
                self._maybe_reap(context)
                job_id = self._next(context)
                if job_id is not None:
                    runner.run(job_id)
                    continue
            except Exception:  # never let one bad job or DB hiccup kill the worker thread
                log.exception("embedded worker loop error")
            self._wake.wait(context.settings.job_poll_interval_s)
            self._wake.clear()

    def _maybe_reap(self, context: AppContext) -> None:
        now = time.monotonic()
        if now - self._last_reap >= context.settings.job_reap_interval_s:
            self._last_reap = now
            reap_stale(context)

    @staticmethod
    def _next(context: AppContext) -> int | None:
        with unit_of_work(context.session_factory) as session:
            return repository.next_runnable(session, utcnow())
