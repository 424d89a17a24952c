"""``topics.DATAFLOW`` tells the truth: every agent reads a topic whose line names it as a
reader, and every topic the app owns has a line."""

from __future__ import annotations

from kpay_faust import topics
from kpay_faust.app import app


def test_every_agent_is_a_named_reader_of_its_topic() -> None:
    app.discover()
    readers = {flow.topic.get_topic_name(): flow.readers for flow in topics.DATAFLOW}
    wrong = [
        (agent.name.rsplit(".", 1)[-1], name)
        for agent in app.agents.values()
        for name in agent.channel.topics  # type: ignore[attr-defined]
        if agent.name.rsplit(".", 1)[-1] not in readers.get(name, ())
    ]
    assert app.agents and wrong == []


def test_every_owned_topic_is_in_the_dataflow() -> None:
    owned = {topic.get_topic_name() for topic in app.owned_topics}
    assert owned == {flow.topic.get_topic_name() for flow in topics.DATAFLOW}
    assert len(owned) == len(topics.DATAFLOW) == 9
