"""What a process of the service holds: settings, database, job dispatcher and vector indexes.

The API process, an embedded worker thread and a Celery worker each build one ``AppContext``;
services receive the parts they need from it, never from globals.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory
from service.deadline import watch_engine
from service.settings import Settings

if TYPE_CHECKING:
    from service.jobs.dispatch import Dispatcher
    from service.recommendations.cache import ResultCache
    from service.recommendations.index import IndexStore
    from service.recommendations.learned import FittedRanker
    from service.recommendations.schemas import Recommendations


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    dispatcher: Dispatcher
    indexes: IndexStore
    recommendations: ResultCache[Recommendations]
    learned_fits: ResultCache[FittedRanker]  # keyed by encoder, library version and evidence
    # Each library task's training rows (``sized`` ranks by them), keyed by library version
    library_sizes: ResultCache[dict[int, int]]
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def close(self) -> None:
        self.dispatcher.stop()
        self.engine.dispose()

    def with_own_pool(self, connections: int) -> AppContext:
        """This context with a database pool of its own, for job workers in the API process:
        requests can never take their connections (and fail a running job), nor they the
        requests'."""
        engine = make_engine(
            self.settings.db_url,
            pool_size=connections,
            max_overflow=2,
            pool_timeout=self.settings.db_pool_timeout_s * 6,
        )
        return dataclasses.replace(
            self, engine=engine, session_factory=make_session_factory(engine)
        )


def build_context(
    settings: Settings, dispatcher: Dispatcher | None = None, *, serving: bool = False
) -> AppContext:
    """A context for ``settings``; the dispatcher defaults to Celery with a broker, else threads.
    ``serving``: the API's, whose PostgreSQL statements end at the request deadline."""
    from service.jobs.dispatch import default_dispatcher
    from service.recommendations.cache import ResultCache
    from service.recommendations.index import IndexStore

    engine = make_engine(
        settings.db_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
        statement_timeout_s=settings.request_deadline_s if serving else None,
    )
    watch_engine(engine)  # a request past its deadline, or abandoned, stops at its next query
    return AppContext(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        dispatcher=dispatcher or default_dispatcher(settings),
        indexes=IndexStore(
            settings.index_dir, exact_max=settings.index_exact_max, nprobe=settings.index_nprobe
        ),
        recommendations=ResultCache(settings.recommend_cache_size, settings.recommend_cache_ttl_s),
        learned_fits=ResultCache(settings.learned_fit_cache_size, settings.recommend_cache_ttl_s),
        library_sizes=ResultCache(settings.learned_fit_cache_size, settings.recommend_cache_ttl_s),
    )
