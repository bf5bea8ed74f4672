"""The ``taskrec`` command line (Typer). Each module adds its commands with ``register(app)``."""

from __future__ import annotations

import typer

from service.cli import engine

app = typer.Typer(
    name="taskrec",
    help="Task embeddings and intermediate-task recommendation for NLP transfer learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

engine.register(app)

from service.cli import client, keys, server  # noqa: E402  (the service's commands)

server.register(app)
keys.register(app)
client.register(app)

from service.cli import selection  # noqa: E402  (sweep and evaluate)

selection.register(app)
