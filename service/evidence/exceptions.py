from __future__ import annotations

from service.errors import Conflict, InvalidInput, NotFound, ServiceError


class EvidenceSetNotFound(NotFound):
    code = "evidence_set_not_found"
    description = "No such evidence set"


class EvidenceInvalid(InvalidInput):
    code = "evidence_invalid"
    description = "The evidence file is invalid; `problems` lists every row and field to fix"


class EvidenceSetNameTaken(Conflict):
    code = "evidence_set_name_taken"
    description = "An evidence set with this name exists (delete it first to replace it)"


class EvidenceTooLarge(ServiceError):
    status_code = 413
    code = "evidence_too_large"
    description = "The evidence file exceeds the size or row limit"


class EvidenceMismatch(InvalidInput):
    code = "evidence_mismatch"
    description = (
        "The evidence sets asked for measured another transfer model, or differ in protocol"
    )
