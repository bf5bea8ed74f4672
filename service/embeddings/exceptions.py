from __future__ import annotations

from service.errors import InvalidInput


class UnknownMethod(InvalidInput):
    code = "unknown_method"
    description = "Unknown embedding method"
