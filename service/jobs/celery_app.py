"""Scale-out: Celery with a Redis (or RabbitMQ) broker; ``taskrec worker`` consumes the queues.

Messages carry only the job id. Tasks are ``acks_late`` and rejected back to the queue if their
worker process dies, and every worker runs a reaper that re-queues jobs whose heartbeat went
stale (a ``kill -9`` of a whole worker), so another worker picks them up and finishes them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING

from celery import Celery

from service.settings import Settings

if TYPE_CHECKING:
    from service.context import AppContext

log = logging.getLogger(__name__)

RUN_JOB = "taskrec.run_job"


def create_celery(settings: Settings) -> Celery:
    """The Celery app for ``settings``; its one task runs a job by id in a per-process context."""
    app = Celery("taskrec", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,  # a long job must not hold a second one hostage
        task_default_queue=settings.queue_name("embed"),
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_s,
            # A broker that drops packets (not only one that refuses) fails a send in seconds:
            # the message is then kept and resent (CeleryDispatcher), not waited on
            "socket_connect_timeout": 3,
            "socket_timeout": 5,
        },
        broker_connection_timeout=3,
        # One quick retry, then the message is kept and resent by CeleryDispatcher (with retries
        # off kombu waited ~6 s on a refused connection here)
        task_publish_retry_policy={
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    holder: dict[str, AppContext] = {}
    lock = threading.Lock()

    def worker_context() -> AppContext:
        with lock:  # built lazily, so every (forked) worker process gets its own engine
            if "context" not in holder:
                from service.context import build_context

                holder["context"] = build_context(settings, CeleryDispatcher(settings, app))
            return holder["context"]

    from sqlalchemy.exc import OperationalError

    @app.task(
        name=RUN_JOB,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(OperationalError, ConnectionError),  # claiming failed: DB unreachable
        retry_backoff=True,
        retry_backoff_max=300,
        retry_jitter=True,
        max_retries=10,
    )
    def run_job(self, job_id: int) -> str:
        from service.jobs.runner import JobRunner

        context = worker_context()
        return JobRunner(context, f"{context.name}/{self.request.hostname}").run(job_id)

    return app


class CeleryDispatcher:
    """Sends committed jobs to the broker. A message the broker refuses (it is down) is kept in
    memory and resent every ``job_reap_interval_s`` until the broker takes it, so a job queued
    during an outage starts when the broker is back; the reaper's redispatch of long-queued
    jobs covers a process that died meanwhile."""

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.settings = settings
        self.app = app or create_celery(settings)
        self._undelivered: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._resender: threading.Thread | None = None

    def describe(self) -> str:
        return "celery"

    def start(self, context: AppContext) -> None:
        pass

    def stop(self) -> None:
        pass

    def enqueue(self, job_id: int, queue: str, delay: float = 0.0) -> None:
        with self._lock:
            waiting = bool(self._undelivered)
        if waiting:  # the broker is down: don't make a request wait on it again
            self._keep(job_id, queue, delay)
            return
        try:
            self._send(job_id, queue, delay)
        except Exception as exc:  # the broker is unreachable: the job stays queued in the DB
            log.warning("job %s not sent to the broker (%s); resent when it is back", job_id, exc)
            self._keep(job_id, queue, delay)

    @property
    def undelivered(self) -> list[int]:
        """Jobs whose message waits for the broker to come back."""
        with self._lock:
            return sorted(self._undelivered)

    def _send(self, job_id: int, queue: str, delay: float) -> None:
        self.app.send_task(
            RUN_JOB,
            args=[job_id],
            queue=self.settings.queue_name(queue),
            countdown=delay or None,
            task_id=f"job-{job_id}-{uuid.uuid4().hex[:12]}",
        )

    def _keep(self, job_id: int, queue: str, delay: float) -> None:
        with self._lock:
            self._undelivered[job_id] = (queue, delay)
            if self._resender is None or not self._resender.is_alive():
                self._resender = threading.Thread(
                    target=self._resend, name="taskrec-resend", daemon=True
                )
                self._resender.start()

    def _resend(self) -> None:
        """Until every kept message is sent: wait, then try each (the broker may be back)."""
        while True:
            time.sleep(self.settings.job_reap_interval_s)
            with self._lock:
                pending = dict(self._undelivered)
                if not pending:
                    self._resender = None
                    return
            for job_id, (queue, delay) in pending.items():
                try:
                    self._send(job_id, queue, delay)
                except Exception:
                    break  # still down: try again next round
                with self._lock:  # unless it was kept again meanwhile (another delay)
                    if self._undelivered.get(job_id) == (queue, delay):
                        del self._undelivered[job_id]
                log.info("job %s sent to the broker after an outage", job_id)

    def ping(self) -> bool:
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:
            return False

    def depth(self) -> dict[str, int]:
        """Messages waiting per queue (Redis brokers only; empty otherwise)."""
        if not (self.settings.broker_url or "").startswith("redis"):
            return {}
        import redis

        client = redis.Redis.from_url(self.settings.broker_url, socket_timeout=2)
        try:
            names = ["embed", "finetune", "backfill"]
            return {q: int(client.llen(self.settings.queue_name(q))) for q in names}
        finally:
            client.close()


def run_worker(
    settings: Settings,
    queues: list[str],
    *,
    concurrency: int = 1,
    pool: str = "threads",
    hostname: str | None = None,
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker on ``queues`` (blocking), with a reaper thread beside it."""
    from service.context import build_context
    from service.jobs.runner import reap_stale

    app = create_celery(settings)
    context = build_context(settings, CeleryDispatcher(settings, app))
    stop = threading.Event()

    def reaper() -> None:
        while not stop.wait(settings.job_reap_interval_s):
            try:
                reap_stale(context)
            except Exception:
                log.warning("reaper pass failed", exc_info=True)

    threading.Thread(target=reaper, name="taskrec-reaper", daemon=True).start()
    argv = [
        "worker",
        f"--queues={','.join(settings.queue_name(q) for q in queues)}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    try:
        app.worker_main(argv)
    finally:
        stop.set()
        context.engine.dispose()
