"""Control commands and the pipeline state they fold into."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ControlCommand(BaseModel):
    """One command on the control topic: ``pause``, ``resume`` or ``rate``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Literal["pause", "resume", "rate"]
    per_second: float | None = Field(default=None, gt=0, le=1_000_000, strict=True)
    by: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _rate_only_for_rate(self) -> ControlCommand:
        if self.command != "rate" and self.per_second is not None:
            raise ValueError("per_second belongs to the rate command only")
        return self

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class ControlState(BaseModel):
    """What every worker obeys; folded from the control topic, which is the source of truth."""

    model_config = ConfigDict(frozen=True)

    paused: bool = False
    per_second: float | None = None
    since: float | None = None  # when the pause or resume took effect
    offset: int = -1  # last control-topic offset folded in

    def apply(self, command: ControlCommand, at: float, offset: int) -> ControlState:
        if command.command == "rate":
            return self.model_copy(update={"per_second": command.per_second, "offset": offset})
        paused = command.command == "pause"
        since = self.since if paused == self.paused and self.since is not None else at
        return self.model_copy(update={"paused": paused, "since": since, "offset": offset})
