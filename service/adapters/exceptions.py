from __future__ import annotations

from service.errors import Conflict, NotFound


class AdapterNotFound(NotFound):
    code = "adapter_not_found"
    description = "No such adapter in the library"


class AdapterBusy(Conflict):
    code = "adapter_busy"
    description = "The adapter is being trained; try again when it is done"
