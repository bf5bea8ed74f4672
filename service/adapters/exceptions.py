from __future__ import annotations

from service.errors import Conflict, InvalidInput, NotFound


class AdapterNotFound(NotFound):
    code = "adapter_not_found"
    description = "No such adapter in the library"


class AdapterBusy(Conflict):
    code = "adapter_busy"
    description = "The adapter is being trained; try again when it is done"


class AdapterBackfillInvalid(InvalidInput):
    code = "adapter_backfill_invalid"
    description = "A task named cannot have a library adapter; `problems` lists which and why"


class NoAdaptersToTrain(Conflict):
    code = "no_adapters_to_train"
    description = "The library has no task an adapter transfer could take as its source"
