"""The ``taskrec`` command line (Typer). Each module adds its commands with ``register(app)``."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli import engine

app = typer.Typer(
    name="taskrec",
    help="Task embeddings and intermediate-task recommendation for NLP transfer learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"taskrec {version('taskrec')}")
        raise typer.Exit()


@app.callback()
def check_settings(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Refuse bad TASKREC_* settings up front, one line per setting, before any command runs."""
    from pydantic import ValidationError

    from service.cli.common import fail, reset_json_mode

    reset_json_mode()
    from service.settings import get_settings

    try:
        get_settings()
    except ValidationError as error:
        fail("; ".join(_setting_problem(e) for e in error.errors()))


def _setting_problem(error: dict) -> str:
    name = "TASKREC_" + "_".join(str(part) for part in error["loc"]).upper()
    return f"{name}={error.get('input')!r}: {error['msg']}"


engine.register(app)

from service.cli import client, evidence, keys, server  # noqa: E402  (the service's commands)

server.register(app)
keys.register(app)
client.register(app)
evidence.register(app)

from service.cli import selection  # noqa: E402  (sweep and evaluate)

selection.register(app)
