"""The dead-letter record: what failed, where it came from, and the bytes themselves."""

from __future__ import annotations

import base64

from pydantic import BaseModel


class DeadLetter(BaseModel):
    v: int = 1
    stage: str
    error: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    value: str | None = None
    value_encoding: str = "utf-8"
    at: float

    @staticmethod
    def text_of(raw: bytes | str | None) -> tuple[str | None, str]:
        """The value as text when it is UTF-8, else base64, so no byte of it is lost."""
        if raw is None or isinstance(raw, str):
            return raw, "utf-8"
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"
