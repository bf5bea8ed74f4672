from __future__ import annotations

from service.errors import InvalidInput, NotFound


class BatchNotFound(NotFound):
    code = "batch_not_found"
    description = "No such batch (or not visible to this key)"


class BatchInvalid(InvalidInput):
    code = "batch_invalid"
    description = "The batch cannot run as asked"
