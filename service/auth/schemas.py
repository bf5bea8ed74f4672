from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class OwnerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    is_admin: bool


class KeyCreate(BaseModel):
    owner: str
    admin: bool = False
    label: str | None = None


class KeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    prefix: str
    owner: OwnerRead
    label: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyIssued(KeyRead):
    key: str  # shown once
