"""The Table class KPay uses: keys encoded exactly like topic keys, changelog writes batched."""

from __future__ import annotations

from typing import Any

import faust


class KPayTable(faust.Table):
    """A Table whose ``str`` keys go to the changelog as raw UTF-8, like every KPay topic key,
    and whose changelog writes go out in batches (``kpay_faust.changelog``).

    Faust serializes table keys as JSON by default while topic keys here are raw; the router
    hashes the changelog key to find a key's owner, so mixed encodings would route most
    interactive queries to the wrong worker.
    """

    def _serializer_from_type(self, typ: Any) -> Any:
        if typ is str:
            return "raw"
        return super()._serializer_from_type(typ)

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        producer = self.app.producer
        batches = getattr(producer, "batches_changelogs", None)
        if partition is None or batches is None or not batches():
            return super().send_changelog(partition, key, value, key_serializer, value_serializer)
        topic = self.changelog_topic
        raw_key, _ = topic.prepare_key(key, key_serializer or self.key_serializer)
        raw_value, _ = topic.prepare_value(value, value_serializer or self.value_serializer)
        return producer.send_changelog_soon(
            topic.get_topic_name(), partition, raw_key, raw_value, self.data.set_persisted_offset
        )
