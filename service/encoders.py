"""Which encoders an owner may ask the server to load: the service's own (``model``), the
packaged MiniLM, and what the admin allows (``allowed_models``: hub names and folders).

Anything else is a 422 at request time, naming only what the client sent, so a request can never
load (or probe for) an arbitrary server path. A ``transfer_model`` that only labels evidence is
not loaded and needs no allowance.
"""

from __future__ import annotations

from pathlib import Path

from service.errors import InvalidInput, Problem
from service.settings import Settings

PACKAGED = {"all-minilm-l6-v2", "minilm", "sentence-transformers/all-minilm-l6-v2"}


class EncoderNotAllowed(InvalidInput):
    code = "encoder_not_allowed"
    description = "The encoder is not on this server's allow-list"


def allowed_encoder(settings: Settings, name: str | None, field: str = "model") -> str:
    """``name`` (or the service's model when None) if the server may load it, else a 422."""
    if name is None or name == settings.model:
        return settings.model
    wanted = _key(name)
    allowed = {_key(settings.model), *PACKAGED, *(_key(m) for m in settings.allowed_models)}
    if wanted in allowed:
        return name
    message = (
        f"{field} {name!r} is not allowed on this server: ask an admin to add it to "
        "TASKREC_ALLOWED_MODELS, or leave it out for the server's own"
    )
    raise EncoderNotAllowed(message, problems=[Problem(field=field, message=message)])


def _key(name: str) -> str:
    """Folders compare by their resolved path, hub names case-insensitively."""
    if name.startswith(("/", ".", "~")):
        return str(Path(name).expanduser().resolve())
    return name.strip().lower()
