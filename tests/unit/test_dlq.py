"""Replays of dead-lettered account commands: a command rejected before (a deposit to an account
that did not exist) is tried again only when it comes back as a replay, and applies once."""

from __future__ import annotations

from decimal import Decimal

import orjson

from kpay_faust.ops.dlq import REPLAY_HEADER, is_replay
from kpay_faust.payments import agents
from kpay_faust.payments.tables import ledger

REPLAY = {REPLAY_HEADER: b"kpay.dlq[0]@7"}


def command(action: str, account: str, amount: str, ref: str) -> bytes:
    return orjson.dumps({"ref": ref, "action": action, "account": account, "amount": amount})


def test_a_replay_is_known_by_its_header_in_either_form():
    assert is_replay(REPLAY) and is_replay([(REPLAY_HEADER, b"x")])
    assert not is_replay({}) and not is_replay(None) and not is_replay([("other", b"x")])


async def test_a_rejected_deposit_applies_once_when_replayed(producer):
    deposit = command("deposit", "ghost", "7.00", "d1")
    async with agents.accounts_ledger.test_context() as ledger_stage:
        await ledger_stage.put(deposit, key="ghost")  # no such account: dead-lettered
        assert [r.topic for r in producer.sent].count("kpay.dlq") == 1
        await ledger_stage.put(command("open", "ghost", "1.00", "o1"), key="ghost")
        await ledger_stage.put(deposit, key="ghost")  # redelivered as is: still rejected
        assert ledger["ghost"].balance == Decimal("1.00")
        await ledger_stage.put(deposit, key="ghost", headers=REPLAY)
        assert ledger["ghost"].balance == Decimal("8.00")
        assert ledger["ghost"].funded == Decimal("8.00")
        await ledger_stage.put(deposit, key="ghost", headers=REPLAY)  # replayed twice
        assert ledger["ghost"].balance == Decimal("8.00")
    assert [r.topic for r in producer.sent].count("kpay.dlq") == 1  # a redelivery is a repeat
