from __future__ import annotations

from service.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError


class TaskNotFound(NotFound):
    code = "task_not_found"
    description = "No such task (or not visible to this key)"


class TaskInvalid(InvalidInput):
    code = "task_invalid"
    description = "The task data is invalid; `problems` lists every problem found"


class UploadTooLarge(ServiceError):
    status_code = 413
    code = "upload_too_large"
    description = "The upload exceeds the size or row limit"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"
    description = "Wrong content type (request or file)"


class MalformedUpload(ServiceError):
    status_code = 400
    code = "malformed_upload"
    description = "The request body cannot be parsed"


class TaskNameTaken(Conflict):
    code = "task_name_taken"
    description = "A task with this name already exists"


class LibraryTaskReadOnly(Forbidden):
    code = "library_task_read_only"
    description = "Library tasks change only through /v1/library (admins)"


class DatasetNotAllowed(Forbidden):
    code = "dataset_not_allowed"
    description = "The dataset folder is outside the library roots"
