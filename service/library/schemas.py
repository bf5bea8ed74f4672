from __future__ import annotations

from pydantic import BaseModel, Field


class FolderRegister(BaseModel):
    path: str = Field(description="a task folder, or a folder of task folders, on the server")
