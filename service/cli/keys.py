"""``taskrec keys create|revoke|list``: API keys, straight in the database (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import fail, print_json, stdout
from service.cli.server import DataDirOption, settings_for


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group to ``app``."""
    keys = typer.Typer(help="Create, revoke and list API keys.", no_args_is_help=True)
    keys.command("create")(create)
    keys.command("revoke")(revoke)
    keys.command("list")(list_keys)
    app.add_typer(keys, name="keys")


def _session(data_dir: Path | None):
    from service.db import make_engine, make_session_factory, unit_of_work, upgrade

    settings = settings_for(data_dir)
    upgrade(settings.db_url)  # a fresh data dir gets its schema first
    engine = make_engine(settings.db_url, pooled=False)
    return unit_of_work(make_session_factory(engine))


def create(
    owner: Annotated[str, typer.Option(help="Owner name (created if new).")] = "default",
    admin: Annotated[bool, typer.Option("--admin", help="Give the owner the admin role.")] = False,
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a key and print it alone on stdout (it is stored hashed and never shown again)."""
    from service.auth.service import issue_key

    with _session(data_dir) as session:
        secret = issue_key(session, owner, admin=admin, label=label).secret
    print(secret)


def revoke(
    key: Annotated[str, typer.Argument(help="The key itself, its prefix (trk_...) or its id.")],
    data_dir: DataDirOption = None,
) -> None:
    """Revoke a key: requests with it answer 401 from then on."""
    from service.auth.service import revoke_key
    from service.errors import ServiceError

    try:
        with _session(data_dir) as session:
            revoked = revoke_key(session, key)
            prefix, owner = revoked.prefix, revoked.owner.name
    except ServiceError as error:
        fail(error.message)
    stdout.print(f"revoked {prefix}… of {owner}")


def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """List keys by id and prefix (the keys themselves are not stored)."""
    from service.auth.service import list_keys as all_keys

    with _session(data_dir) as session:
        rows = [
            {
                "id": k.id,
                "prefix": k.prefix,
                "owner": k.owner.name,
                "admin": k.owner.is_admin,
                "label": k.label,
                "created_at": k.created_at.isoformat(),
                "revoked": k.revoked_at is not None,
            }
            for k in all_keys(session)
        ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        state = "revoked" if row["revoked"] else "active"
        role = " admin" if row["admin"] else ""
        stdout.print(
            f"{row['id']:>4}  {row['prefix']}…  {row['owner']}{role}  {state}  {row['label'] or ''}"
        )
