"""Service-level HTTP shapes: health and who the caller is."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class HealthAnswer(BaseModel):
    status: str = Field(
        description="ready; recovering or starting (503); or why a stage waits (503)."
    )
    worker: str
    assigned: int = Field(description="Partitions assigned to this worker.")
    dead_letters_stalled_since: float | None


class WhoAmIAnswer(BaseModel):
    """Who the token belongs to and what it may do: the console shows only what it allows."""

    name: str
    role: Literal["viewer", "client", "operator"]
