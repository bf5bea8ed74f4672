from __future__ import annotations

from service.errors import Conflict, Forbidden


class LibraryNameTaken(Conflict):
    code = "library_name_taken"
    description = "The library already has a task with this name"


class FolderNotAllowed(Forbidden):
    code = "folder_not_allowed"
    description = "The folder is outside the library roots"
