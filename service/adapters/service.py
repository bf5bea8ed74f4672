"""Listing and deleting the adapter library's adapters (``workers.adapter_library``)."""

from __future__ import annotations

from datetime import UTC, datetime

from service.adapters.exceptions import AdapterBusy, AdapterNotFound
from service.adapters.schemas import AdapterRead
from service.settings import Settings
from workers.adapter_library import AdapterBusy as LibraryBusy
from workers.adapter_library import AdapterLibrary, StoredAdapter


def library(settings: Settings) -> AdapterLibrary:
    # Listing and deleting do not depend on an encoder: every encoder's adapters are shown
    return AdapterLibrary(settings.adapters_dir, encoder_id="")


def list_adapters(settings: Settings, task: str | None = None) -> list[AdapterRead]:
    """Every adapter in the library, newest first (``task``: of that task only)."""
    found = library(settings).entries()
    return [_read(a) for a in found if task is None or a.task == task]


def delete_adapter(settings: Settings, key: str) -> None:
    """Remove one adapter; the next transfer that needs it trains it again."""
    try:
        deleted = library(settings).delete(key)
    except LibraryBusy as error:
        raise AdapterBusy(str(error)) from None
    if not deleted:
        raise AdapterNotFound(f"no adapter {key!r}")


def _read(adapter: StoredAdapter) -> AdapterRead:
    stage = adapter.stage
    return AdapterRead.model_validate(
        {
            **adapter.to_dict(),  # its key, task, encoder, rows, epochs, seed and settings
            "seconds": round(float(stage["seconds"]), 2),
            "trainable_params": int(stage.get("trainable_params", 0)),
            "created_at": datetime.fromtimestamp(adapter.created_at, UTC),
        }
    )
