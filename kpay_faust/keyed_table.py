"""The Table class KPay uses, so that table keys are encoded exactly like topic keys."""

from __future__ import annotations

from typing import Any

import faust


class KPayTable(faust.Table):
    """A Table whose ``str`` keys go to the changelog as raw UTF-8, like every KPay topic key.

    Faust serializes table keys as JSON by default while topic keys here are raw; the router
    hashes the changelog key to find a key's owner, so mixed encodings would route most
    interactive queries to the wrong worker.
    """

    def _serializer_from_type(self, typ: Any) -> Any:
        if typ is str:
            return "raw"
        return super()._serializer_from_type(typ)
