from __future__ import annotations

from service.errors import Conflict, InvalidInput, NotFound


class TransferNotFound(NotFound):
    code = "transfer_not_found"
    description = "No such transfer (or not visible to this key)"


class TransferInvalid(InvalidInput):
    code = "transfer_invalid"
    description = "The transfer cannot run as asked"


class NoSources(Conflict):
    code = "no_sources"
    description = "No source task could be recommended"
