"""Static files of a package folder, served by name from a fixed list (no other name, no path):
the console's files and Swagger UI's. Pages for people, not part of the API document."""

from __future__ import annotations

from importlib.resources.abc import Traversable
from typing import ClassVar

from faust.web import Request, Response

from kpay_faust.web.errors import KPayView


class ServedFiles(KPayView):
    in_api = False
    folder: ClassVar[Traversable]
    files: ClassVar[dict[str, str]]  # name -> content type
    headers: ClassVar[dict[str, str]] = {}

    async def get(self, request: Request, name: str) -> Response:
        kind = self.files.get(name)
        if kind is None:
            return self.error(404, f"no file {name[:64]!r}")
        body = (self.folder / name).read_bytes()
        return self.bytes(body, content_type=kind, headers=self.headers)
