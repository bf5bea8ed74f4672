"""All of taskrec's settings, in one place, read from ``TASKREC_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workers.selection.methods import EVIDENCE_FREE_SERVED, METHODS, SERVED

MIN_ADMIN_KEY_LENGTH = 32  # a configured admin key shorter than this is refused outside development
MIN_SECRET_LENGTH = 32  # the same for the dashboard's cookie-signing secret


class Settings(BaseSettings):
    """Defaults run everything embedded: SQLite, an in-process worker, the packaged encoder."""

    model_config = SettingsConfigDict(env_prefix="TASKREC_", env_file=".env", extra="ignore")

    # Data
    tasks_root: Path = Path("../shared/tasks")  # the shared library of task folders
    data_dir: Path = Path(".taskrec")  # database, artefacts, FAISS indexes, embedding cache
    cache_path: Path | None = None  # embedding cache; None: <data_dir>/cache
    # Read-only embedding caches consulted after it (main.sh: the repository's
    # results/embeddings, the vectors the saved evaluation read), never written to
    embedding_seed_paths: list[Path] = []

    # Encoder and embeddings
    model: str = "all-MiniLM-L6-v2"  # packaged MiniLM; any HF encoder name or local path works
    max_examples: int = 1000  # examples an embedding uses (sampled with the seed)
    embed_seed: int = 0
    embed_batch_size: int = 32
    max_length: int = 128
    qa_max_length: int = 384
    taskemb_head_training: Literal["full", "head"] = "full"  # brief fine-tune of encoder + head
    # TaskEmb's labels: "data" (empirical Fisher) or "sampled" from the model's predictions
    # (always sampled for a task without labels)
    taskemb_labels: Literal["data", "sampled"] = "data"
    # Embedding forward passes: "auto" = bf16 autocast on CUDA and on CPUs with native bf16
    # (AVX512-BF16/AMX), else fp32; vectors agree with fp32 to cosine > 0.99 (bench/)
    embed_precision: Literal["auto", "fp32", "bf16"] = "auto"
    taskemb_train_epochs: float = 1.0
    # "best": the served method that ranked best in the ranker file's saved evaluation (within
    # the task's type when a request keeps to one type); or a served method
    # (workers.selection.methods.SERVED).
    default_method: Literal[("best", *SERVED)] = "best"  # type: ignore[valid-type]
    # How a request ranks for a transfer model without measured transfers, when the saved
    # evaluation did not measure that model either (for the model it measured, its best
    # evidence-free method): "sized" beat largest-first on ρ and Regret@3 on both full transfer
    # matrices of docs/results.md, the only evidence-free method that did
    evidence_free_method: Literal[EVIDENCE_FREE_SERVED] = "sized"  # type: ignore[valid-type]

    # Fine-tuning
    device: str | None = None  # None: CUDA when available

    # Source selection (transfer sweeps, evaluation, the learned ranker)
    checkpoints_path: Path | None = None  # sweep source checkpoints; None: <data_dir>/checkpoints
    # Trained source adapters (adapter and fusion strategies); None: <data_dir>/adapters
    adapters_path: Path | None = None
    # Train a library task's adapter (as a default adapter transfer's source stage would) as
    # backfill when the task enters the library, instead of on its first adapter transfer. Off
    # by default: the whole library's adapters take hours on a CPU (POST /v1/adapters/backfill
    # queues them on request)
    adapter_backfill_on_register: bool = False
    ranker_path: Path | None = None  # the learned ranker (JSON); None: <data_dir>/ranker.json
    selection_methods: str = ",".join(METHODS)  # what `taskrec evaluate` scores by default

    # Evidence: measured transfers per transfer model (the model a user fine-tunes, named as
    # they load it; distinct from ``model``, the embedding encoder)
    # Whose evidence ranks a request that names none; None: ``model`` (what transfers fine-tune)
    transfer_model: str | None = None
    # Sweep CSVs the deployment ships, by evidence-set name ({"minilm-10k": "results/..."}):
    # imported on start when missing or changed; the transfer model and protocol come from each
    # file's ``.sweep.json``. The first set of a transfer model becomes its default.
    evidence_files: dict[str, Path] = {}
    evidence_max_bytes: int = 20 * 1024 * 1024  # one imported file
    evidence_max_rows: int = 200_000  # rows of one imported file
    # Library calibration: every library task measured as a donor on these probe targets (four
    # task types; all are targets of results/run-matrix-10k.sh, so that sweep's rows count too)
    calibration_probes: list[str] = ["rte", "sick_relatedness", "quartz", "wnut17_ner"]
    # Cost estimates of sweeps and calibrations, measured on the 2-core dev machine (one torch
    # thread per sweep, the packaged MiniLM at 64 tokens, fp32): seconds per training example of
    # one 64-token sequence, and per target run beyond its examples (copies, scoring).
    sweep_seconds_per_example: float = 0.025
    sweep_seconds_per_run: float = 15.0

    # Transfer runs: what a request that leaves a size unset gets (None: the schema's default:
    # every source row, every validation row, the stage's epochs). Small values make a short
    # smoke run of the whole path, as the README quickstart's test does.
    transfer_source_max_examples: int | None = None  # source training rows per source
    transfer_eval_n: int | None = None  # validation rows scored per task
    transfer_max_steps: int | None = None  # optimiser steps per stage

    # Service: deployment
    env: str = "development"  # "production" refuses unsafe settings (short admin key, ...)
    log_format: Literal["text", "json"] = "text"  # serve's and worker's log lines
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None  # None: SQLite file <data_dir>/taskrec.db
    db_pool_size: int = 10  # PostgreSQL connections kept open per process
    db_max_overflow: int = 40  # beyond the pool, up to this many more (request threads: 40)
    db_pool_timeout_s: float = 5.0  # a request waiting longer for a connection gets a 503
    # Admission: requests in flight per API process and per key; a request waits up to
    # admission_wait_s for a slot (holding no thread or connection), then gets 429 (its key's
    # share is taken) or 503 (the process is full) with Retry-After, as it does at once when
    # admission_max_waiting already wait. Health, readiness, metrics, event streams: exempt.
    max_inflight_requests: int = 40
    max_inflight_per_key: int = 16
    admission_wait_s: float = 5.0
    admission_max_waiting: int = 400
    # A request still running after this many seconds (from admission) stops: a 503
    # deadline_exceeded, its unit of work rolled back; the work of a client that went away stops
    # too (service.deadline). 0: no deadline. Event streams and health checks have none.
    request_deadline_s: float = 300.0  # a 100 MB upload takes 35-60 s on 2 busy cores
    broker_url: str | None = None  # None: jobs run in a worker thread inside `taskrec serve`
    queue_namespace: str = ""  # prefix of broker queue names, so deployments can share a broker
    admin_key: SecretStr | None = None  # first admin key; None: generated and printed once

    # Service: limits and access
    max_upload_bytes: int = 100 * 1024 * 1024  # one request's body
    max_upload_rows: int = 1_000_000  # rows over all splits of one task
    # One text field of an uploaded row (a sentence, a QA context): longer is a 422 naming the
    # row, so no single row can blow up the memory of its embedding or fine-tuning job
    max_text_chars: int = 100_000
    # Staging folders of dead requests are removed on start and then this often; any older than
    # staging_max_age_s is taken as dead too (a request or import never runs that long)
    staging_sweep_interval_s: float = 600.0
    staging_max_age_s: float = 6 * 3600.0
    rate_limit_per_minute: int = 600  # requests per API key; 0 disables the limit
    rate_limit_burst: int = 120  # of those, how many a key may spend at once
    rate_limit_redis_url: str | None = None  # shared limit across API processes; None: per process
    library_roots: list[Path] = []  # folders admins may register from, besides tasks_root
    # Encoders owners may ask the server to load (hub names, folders), besides ``model`` and the
    # packaged MiniLM; anything else is refused (service.encoders)
    allowed_models: list[str] = []
    # /metrics: "open" (no key: a scraper on a private network) or "admin" (an admin key)
    metrics_access: Literal["open", "admin"] = "admin"
    register_library_on_start: bool = True  # `taskrec serve`: register tasks_root as the library
    recommend_candidates: int = 1000  # FAISS hits per component before rank fusion
    # Libraries up to this size are searched exactly; above it, by an inverted file (IVF), much
    # faster but approximate: on structureless vectors its top-10 kept 15-27% of the exact one
    # (bench/recommend.py), so it is for large libraries whose embeddings cluster.
    index_exact_max: int = 200_000
    index_nprobe: int = 32  # inverted lists an approximate search visits (of √n)
    learned_candidates: int = 100  # fused top-n the learned ranker re-orders
    learned_fit_cache_size: int = 8  # fitted learned rankers kept per process (by evidence)
    recommend_cache_size: int = 10_000  # finished rankings kept per process; 0 disables
    recommend_cache_ttl_s: float = 30.0  # how long a kept ranking may lag library counts
    search_threads: int | None = 1  # FAISS threads per search (requests run in parallel); None: all

    # Dashboard (/dashboard, service.dashboard): the secret that signs its session cookies.
    # None in development: one is generated once and kept in <data_dir>/dashboard.secret (so
    # every API process of a data folder shares it); outside development it must be set, 32+
    # characters, or the dashboard answers 503 saying so (the API is unaffected).
    dashboard_secret: SecretStr | None = None
    dashboard_session_ttl_s: int = 8 * 3600  # a session cookie's lifetime (signed with it)
    # Failed logins per client address within the window before the login form is refused
    # (per API process)
    dashboard_login_attempts: int = 5
    dashboard_login_window_s: float = 300.0

    # Service: jobs
    embedded_workers: int = 1  # worker threads inside `taskrec serve` (no broker)
    torch_threads: int | None = None  # torch threads per job; None: torch's default (all cores)
    job_heartbeat_s: float = 3.0
    # A running job whose heartbeat is silent this long (five beats) is handed to another
    # worker; a slow but alive one keeps beating, and its claim token fences a late finish
    job_stale_after_s: float = 15.0
    job_reap_interval_s: float = 5.0
    job_redispatch_after_s: float = 600.0  # a job queued this long is sent to the broker again
    job_poll_interval_s: float = 1.0  # embedded workers look for queued jobs this often
    job_progress_interval_s: float = 0.5  # progress (and cancellation) reaches the DB this often
    job_max_attempts: int = 3
    job_retry_backoff_s: float = 10.0  # transient failures wait backoff * 2**(attempt-1)
    broker_visibility_timeout_s: int = 3600
    sse_poll_interval_s: float = 0.5

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        key = self.admin_key.get_secret_value() if self.admin_key else None
        if self.env != "development" and key is not None and len(key) < MIN_ADMIN_KEY_LENGTH:
            raise ValueError(
                f"TASKREC_ADMIN_KEY must have at least {MIN_ADMIN_KEY_LENGTH} characters "
                f"outside development (env={self.env!r})"
            )
        secret = self.dashboard_secret.get_secret_value() if self.dashboard_secret else None
        if self.env != "development" and secret is not None and len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"TASKREC_DASHBOARD_SECRET must have at least {MIN_SECRET_LENGTH} characters "
                f"outside development (env={self.env!r})"
            )
        return self

    @property
    def cache_dir(self) -> Path:
        return self.cache_path or self.data_dir / "cache"

    @property
    def default_transfer_model(self) -> str:
        return self.transfer_model or self.model

    @property
    def checkpoints_dir(self) -> Path:
        return self.checkpoints_path or self.data_dir / "checkpoints"

    @property
    def adapters_dir(self) -> Path:
        return self.adapters_path or self.data_dir / "adapters"

    @property
    def ranker_file(self) -> Path:
        return self.ranker_path or self.data_dir / "ranker.json"

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: ``database_url`` or the SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'taskrec.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def staging_dir(self) -> Path:
        """Uploads land here while they are validated; same file system as the artefacts."""
        return self.data_dir / "staging"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"

    def queue_name(self, queue: str) -> str:
        return f"{self.queue_namespace}.{queue}" if self.queue_namespace else queue


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
