"""Stages the fetch loop calls itself (``KPayApp.stage``, ``engine.stages.Stage``): records
reach them in order, a bad record is answered alone, what was not done is not acknowledged,
and the account stage moves money on this path as on Faust's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from faust.types import TP, Message

from kpay_faust import topics
from kpay_faust.app import app
from kpay_faust.engine import consumer as consumer_module
from kpay_faust.engine.consumer import KPayConsumer
from kpay_faust.engine.stages import NOT_DONE, GatheringStage, Stage
from kpay_faust.metrics import agents as metrics_agents
from kpay_faust.payments import agents
from kpay_faust.payments.models import Account, PaymentEvent, State
from kpay_faust.payments.tables import ledger

TOPIC = "kpay.test.direct"


def message(tp: TP, offset: int, value: bytes = b"v", key: bytes = b"k") -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, [], key, value, None, tp=tp)


async def fetched(messages: list[Message]) -> AsyncIterator[tuple[TP, Message]]:
    for m in messages:
        yield m.tp, m


def consumer_with(stage: Stage, monkeypatch, owned=lambda tp: True) -> KPayConsumer:
    monkeypatch.setitem(app.direct_stages, TOPIC, stage)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    consumer = app._new_consumer()
    consumer.resume_flow()
    monkeypatch.setattr(consumer, "owns", owned)
    return consumer


def recorder() -> tuple[list[int], Callable[[Any], Awaitable[None]]]:
    """A step that notes the offset of each event it is given, and the offsets it noted."""
    done: list[int] = []

    async def step(event) -> None:
        done.append(event.message.offset)

    return done, step


def acked(consumer: KPayConsumer, tp: TP) -> list[int]:
    return list(consumer._acked[tp])


async def test_each_partition_gets_its_records_in_order_and_they_are_acknowledged(
    producer, monkeypatch
) -> None:
    calls: list[list[int]] = []
    seen: list[tuple[int, int]] = []

    async def step(event) -> int:
        seen.append((event.message.partition, event.message.offset))
        return event.message.offset

    stage = Stage(
        "direct", step, failed=None, finish=lambda done: calls.append([r for _, r in done])
    )  # type: ignore[arg-type]
    consumer = consumer_with(stage, monkeypatch)
    one, two = TP(TOPIC, 1), TP(TOPIC, 2)
    records = [message(one, 5), message(two, 40), message(one, 6), message(two, 41)]
    assert await consumer._deliver(fetched(records)) is True
    assert seen == [(1, 5), (1, 6), (2, 40), (2, 41)]
    assert calls == [[5, 6], [40, 41]]  # ``finish`` once per partition's batch
    assert acked(consumer, one) == [5, 6] and acked(consumer, two) == [40, 41]
    assert consumer._read_offset[one] == 6 and consumer.handed_over == 4


async def test_a_record_that_fails_is_handed_to_the_failure_handler_alone(
    producer, monkeypatch
) -> None:
    failed: list[tuple[str, int]] = []
    done: list[int] = []

    async def step(event) -> None:
        if event.message.value == b"bad":
            raise ValueError("unreadable")
        done.append(event.message.offset)

    async def on_failure(stage: str, exc: BaseException, event) -> None:
        failed.append((stage, event.message.offset))

    consumer = consumer_with(Stage("direct", step, on_failure), monkeypatch)
    tp = TP(TOPIC, 0)
    records = [message(tp, 1), message(tp, 2, b"bad"), message(tp, 3)]
    assert await consumer._deliver(fetched(records)) is True
    assert done == [1, 3] and failed == [("direct", 2)]
    assert acked(consumer, tp) == [1, 2, 3]  # answered, so the commit may pass it


async def test_records_of_a_partition_lost_meanwhile_are_not_acknowledged(
    producer, monkeypatch
) -> None:
    done, step = recorder()
    kept, lost = TP(TOPIC, 0), TP(TOPIC, 1)
    stage = Stage("direct", step, failed=None, finish=lambda done: None)  # type: ignore[arg-type]
    consumer = consumer_with(stage, monkeypatch, owned=lambda tp: tp == kept)
    records = [message(kept, 7), message(lost, 9)]
    assert await consumer._deliver(fetched(records)) is True
    assert done == [7]
    assert acked(consumer, kept) == [7] and acked(consumer, lost) == []


async def test_a_record_left_for_later_is_fetched_again_with_the_rest_of_its_partition(
    producer, monkeypatch
) -> None:
    """The gateway leaves a payment it may not admit now (paused, rate-limited) in Kafka: the
    records from it on are neither applied nor acknowledged, and the partition is rewound to
    it and paused until the app resumes it; other partitions go on."""
    done: list[int] = []

    async def step(event) -> object:
        if event.message.offset == 8:
            return NOT_DONE
        done.append(event.message.offset)
        return None

    rewound: list[tuple[TP, int]] = []

    async def rewind(tp: TP, offset: int) -> None:
        rewound.append((tp, offset))

    held, other = TP(TOPIC, 0), TP(TOPIC, 1)
    consumer = consumer_with(Stage("direct", step, failed=None), monkeypatch)  # type: ignore[arg-type]
    monkeypatch.setattr(consumer, "_rewind", rewind)
    records = [message(held, 7), message(held, 8), message(held, 9), message(other, 3)]
    assert await consumer._deliver(fetched(records)) is True
    assert done == [7, 3]
    assert acked(consumer, held) == [7] and acked(consumer, other) == [3]
    assert rewound == [(held, 8)]
    assert consumer._read_offset[held] == 7  # 8 and 9, fetched again, are not "read before"


async def test_a_stage_that_fails_as_a_whole_has_its_records_fetched_again(
    producer, monkeypatch
) -> None:
    """An error outside the per-record handling (here in ``finish``) must not end the fetch
    loop or acknowledge anything: the loop seeks back to the commits and fetches them again."""

    async def step(event) -> None:
        return None

    def finish(done) -> None:
        raise RuntimeError("totals row unwritable")

    monkeypatch.setattr(consumer_module, "RETRY_AFTER", 0.0)
    consumer = consumer_with(Stage("direct", step, failed=None, finish=finish), monkeypatch)  # type: ignore[arg-type]
    tp = TP(TOPIC, 0)
    assert await consumer._deliver(fetched([message(tp, 1), message(tp, 2)])) is False
    assert acked(consumer, tp) == []


async def test_a_seek_before_the_records_reach_their_stage_stops_the_delivery(
    producer, monkeypatch
) -> None:
    done, step = recorder()
    consumer = consumer_with(Stage("direct", step, failed=None), monkeypatch)  # type: ignore[arg-type]
    tp = TP(TOPIC, 0)

    async def seek_during_fetch() -> AsyncIterator[tuple[TP, Message]]:
        yield tp, message(tp, 1)
        consumer._seeks += 2  # a seek back to the commits happened meanwhile

    assert await consumer._deliver(seek_during_fetch()) is False
    assert done == []


def test_every_stage_is_delivered_directly() -> None:
    """The metrics stage gathers a quarter of a second of outcomes per window write."""
    names = {name: stage.name for name, stage in app.direct_stages.items()}
    assert names == {
        topics.payments_incoming.get_topic_name(): "inflight_gateway",
        topics.payments_inflight.get_topic_name(): "account_stage",
        topics.payments_complete.get_topic_name(): "confirmed_stage",
        topics.accounts.get_topic_name(): "accounts_ledger",
        topics.payments_confirmed.get_topic_name(): "payment_metrics",
    }
    gathering = app.direct_stages[topics.payments_confirmed.get_topic_name()]
    assert isinstance(gathering, GatheringStage)
    assert (gathering.within, gathering.max_) == (metrics_agents.BATCH_WITHIN, 2000)


async def test_a_gathering_stage_runs_and_acknowledges_its_batch_once_it_is_due(
    producer, monkeypatch
) -> None:
    """Nothing is run or acknowledged before the oldest record has waited ``within`` (or
    ``max_`` came); then one batch, in order per partition, without a lost partition's. The
    fetch loop asks after every fetch, records or not."""
    now = [100.0]
    batches: list[list[tuple[int, int]]] = []

    async def run_batch(events, owns) -> None:
        batches.append([(e.message.partition, e.message.offset) for e in events])

    stage = GatheringStage("gathering", run_batch, within=0.25, max_=5, clock=lambda: now[0])
    one, two, lost = TP(TOPIC, 1), TP(TOPIC, 2), TP(TOPIC, 3)
    consumer = consumer_with(stage, monkeypatch, owned=lambda tp: tp != lost)  # type: ignore[arg-type]
    assert await consumer._deliver(fetched([message(one, 5), message(lost, 9)])) is True
    now[0] += 0.1
    assert await consumer._deliver(fetched([message(two, 40), message(one, 6)])) is True
    assert batches == [] and acked(consumer, one) == []  # the oldest waited 0.1 s
    now[0] += 0.2
    assert await consumer._deliver(fetched([])) is True  # a fetch with nothing: due now
    assert batches == [[(1, 5), (2, 40), (1, 6)]]  # as fetched: each partition in order
    assert acked(consumer, one) == [5, 6] and acked(consumer, two) == [40]
    assert acked(consumer, lost) == []  # its new owner fetches it

    records = [message(one, n) for n in range(7, 12)]  # ``max_`` at once: no wait
    assert await consumer._deliver(fetched(records)) is True
    assert batches[-1] == [(1, n) for n in range(7, 12)]
    assert acked(consumer, one) == [5, 6, 7, 8, 9, 10, 11]


async def test_a_gathering_stage_that_fails_leaves_its_batch_to_be_fetched_again(
    producer, monkeypatch
) -> None:
    async def run_batch(events, owns) -> None:
        raise RuntimeError("store closed")

    stage = GatheringStage("gathering", run_batch, within=0.0, max_=100)
    consumer = consumer_with(stage, monkeypatch)  # type: ignore[arg-type]
    monkeypatch.setattr(consumer_module, "RETRY_AFTER", 0.0)
    tp = TP(TOPIC, 0)
    assert await consumer._deliver(fetched([message(tp, 1), message(tp, 2)])) is False
    assert acked(consumer, tp) == []


@pytest.mark.parametrize("state", [State.DEBIT, State.CREDIT])
async def test_the_account_stage_moves_money_when_called_by_the_fetch_loop(
    producer, monkeypatch, state
) -> None:
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    ledger.data["neil"] = Account(balance=Decimal("50.00"), opened_at=0.0)
    ledger.data["john"] = Account(balance=Decimal("0.00"), opened_at=0.0)
    ledger.forget_cached()
    consumer = app._new_consumer()
    consumer.resume_flow()
    payment = PaymentEvent(
        id="p1", payer="neil", payee="john", amount=Decimal("20.00"), state=state
    )
    account = "neil" if state is State.DEBIT else "john"
    tp = TP(topics.payments_inflight.get_topic_name(), 3)
    records = [message(tp, offset, payment.encode(), account.encode()) for offset in (0, 1)]
    assert await consumer._deliver(fetched(records)) is True  # the second is a duplicate
    balance = ledger.data[account].balance  # the store: the write went all the way
    assert balance == (Decimal("30.00") if state is State.DEBIT else Decimal("20.00"))
    outs = [PaymentEvent.decode(sent.value) for sent in producer.sent if "payments" in sent.topic]
    following = State.CREDIT if state is State.DEBIT else State.COMPLETE
    assert [out.state for out in outs] == [following, following]  # the same outcome again
    assert acked(consumer, tp) == [0, 1]
    assert agents.account_stage.name == "account_stage"
