"""The business function: four stages that move money with no database transaction.

Each stage is one Faust agent at concurrency 1 (money-moving stages must not commit past an
unprocessed event). Effects are idempotent: a step records its outcome in the ledger, just
after the balance it moved and in the same changelog partition, before emitting; a redelivered
or duplicated event re-emits the same outcome without moving money again. Downstream stages do
the same, so at-least-once delivery cannot double a payment.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from faust import EventT, StreamT
from pydantic import ValidationError

from kpay_faust import topics
from kpay_faust.app import app
from kpay_faust.control.state import control
from kpay_faust.ops.deadletter import (
    NOT_DONE,
    dead_letter,
    make_current,
    run_batched_stage,
    run_stage,
)
from kpay_faust.payments.models import (
    Account,
    AccountAction,
    AccountCommand,
    Completion,
    PaymentEvent,
    PaymentStatus,
    PaymentSubmission,
    PipelineTotals,
    State,
    describe,
    parse_amount,
)
from kpay_faust.payments.tables import (
    account_row,
    ledger,
    payment_status,
    pipeline_totals,
    record_step,
    step_outcome,
)

log = logging.getLogger(__name__)

OK = "ok"
REJECTED_PREFIX = "rejected: "
_PAYMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$")

#: Events each stage of this worker handled, and duplicates it refused to apply twice.
processed: Counter[str] = Counter()
duplicates: Counter[str] = Counter()


def _decode_document(raw: bytes) -> Any:
    """JSON in one pass; the slower stdlib parser only for what orjson refuses (big integers,
    NaN), so such payments are rejected with a reason instead of dead-lettered."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


Moves = list[tuple[str, Any, int]]  # (total kind, amount, sign) applied to a totals row


def count_batch(source: str) -> Callable[[list[tuple[EventT, Moves | None]]], None]:
    """Apply a batch's moves to each partition's totals row in one write per partition.

    The row keeps the last offset of ``source`` it counted, so an event redelivered after a
    crash is not counted again, whichever of its table writes had reached the changelog.
    """
    field = f"{source}_offset"

    def finish(done: list[tuple[EventT, Moves | None]]) -> None:
        groups: dict[int, list[tuple[EventT, Moves | None]]] = {}
        for event, moves in done:
            groups.setdefault(event.message.partition, []).append((event, moves))
        for partition, members in groups.items():
            make_current(members[-1][0])  # the row's changelog partition
            key = str(partition)
            row = pipeline_totals.get(key, PipelineTotals())
            counted_through = getattr(row, field)
            for event, moves in members:
                if event.message.offset > counted_through:
                    for kind, amount, sign in moves or ():
                        row = row.add(kind, amount, sign)
            last = max(event.message.offset for event, _ in members)
            pipeline_totals[key] = row.derive(**{field: max(last, counted_through)})

    return finish


# ---- 1. inflight gateway ---------------------------------------------------------------


@app.agent(topics.payments_incoming, name="inflight_gateway")
async def inflight_gateway(stream: StreamT) -> AsyncIterator[int]:
    """Admits payments: idempotency by id, validation, inflight total, ``started_at`` stamp."""
    async for count in run_batched_stage(stream, "inflight_gateway", admit, count_incoming):
        yield count


count_incoming = count_batch("incoming")


async def admit(event: EventT) -> Moves | None:
    """Admit one payment; returns what it adds to the totals (counted once per batch)."""
    if not await control.admission_gate(event):  # paused: wait here (the input is paused too)
        return NOT_DONE  # a rebalance happened while it waited: the partition's owner redelivers
    processed["inflight_gateway"] += 1
    try:
        doc = _decode_document(event.message.value)
    except ValueError as exc:
        await dead_letter("inflight_gateway", f"not JSON: {exc}", event)
        return
    if not isinstance(doc, dict):
        await dead_letter("inflight_gateway", "a payment must be a JSON object", event)
        return
    payment_id = doc.get("id", event.key)
    if not isinstance(payment_id, str) or not _PAYMENT_ID.match(payment_id):
        await dead_letter("inflight_gateway", "missing or invalid payment id", event)
        return
    if event.key != payment_id:
        # Idempotency is per partition: move the payment to the partition its id hashes to.
        await topics.payments_incoming.send(key=payment_id, value=event.message.value)
        return
    status = payment_status.get(payment_id)
    if status is not None:
        return await _resubmitted(event, status, doc)
    try:
        submission = PaymentSubmission.model_validate(doc)
    except ValidationError as exc:
        await _reject_at_gateway(event, payment_id, doc, describe(exc))
        return
    now = time.time()
    status = PaymentStatus(
        id=payment_id,
        state=State.DEBIT,
        payer=submission.payer,
        payee=submission.payee,
        amount=submission.amount,
        created_at=submission.created_at,
        started_at=now,
        source_offset=event.message.offset,
        admitted=True,
        inflight=True,
    )
    payment_status[payment_id] = status
    await _emit_admission(status)
    return [("inflight", submission.amount, 1)]


async def _emit_admission(status: PaymentStatus) -> None:
    event = PaymentEvent(
        id=status.id,
        payer=status.payer,
        payee=status.payee,
        amount=status.amount,
        state=State.DEBIT,
        created_at=status.created_at,
        started_at=status.started_at,
    )
    if status.state == State.REJECTED:
        rejected = event.advance(State.REJECTED, reason=status.reason)
        await topics.emit(topics.payments_complete, status.id, rejected.encode())
    else:
        await topics.emit(topics.payments_inflight, status.payer, event.encode())


async def _resubmitted(event: EventT, status: PaymentStatus, doc: dict) -> Moves | None:
    if status.source_offset == event.message.offset:
        # The message that admitted it, delivered again after a crash: emit again, and count
        # it unless the totals row already has (it knows the offsets it counted).
        await _emit_admission(status)
        return [("inflight", status.amount, 1)] if status.admitted else None
    duplicates["inflight_gateway"] += 1
    try:
        same = status.same_request(PaymentSubmission.model_validate(doc))
    except ValidationError:
        same = False
    if same:
        log.info("payment %s resubmitted: already %s, not applied again", status.id, status.state)
        return None
    await dead_letter(
        "inflight_gateway",
        f"payment id {status.id!r} is already used by a different payment (state {status.state})",
        event,
    )
    return None


def _text_field(doc: dict, name: str) -> str | None:
    value = doc.get(name)
    return value[:64] if isinstance(value, str) else None


def _known_amount(doc: dict) -> Any:
    try:
        return parse_amount(doc.get("amount"))
    except ValueError:
        return None


async def _reject_at_gateway(event: EventT, payment_id: str, doc: dict, reason: str) -> None:
    created_at = doc.get("created_at")
    status = PaymentStatus(
        id=payment_id,
        state=State.REJECTED,
        payer=_text_field(doc, "from"),
        payee=_text_field(doc, "to"),
        amount=_known_amount(doc),
        reason=reason,
        created_at=created_at if isinstance(created_at, int | float) else None,
        started_at=time.time(),
        source_offset=event.message.offset,
    )
    payment_status[payment_id] = status
    await _emit_admission(status)


# ---- 2 and 3. account stage: debit, credit, refund ---------------------------------------


@app.agent(topics.payments_inflight, name="account_stage")
async def account_stage(stream: StreamT) -> AsyncIterator[int]:
    """Moves money on the account the event is keyed by: debit payer, credit payee, refund."""
    async for offset in run_stage(stream, "account_stage", apply_to_account):
        yield offset


async def apply_to_account(event: EventT) -> None:
    processed["account_stage"] += 1
    payment = PaymentEvent.decode(event.message.value)
    if payment.amount is None or payment.payer is None or payment.payee is None:
        raise ValueError(f"payment {payment.id} lacks an amount or an account")
    step = f"{payment.id}:{payment.state}"
    done = _applied(step, payment.payee if payment.state is State.CREDIT else payment.payer)
    if done is not None:
        duplicates["account_stage"] += 1
    if payment.state is State.DEBIT:
        if done is None:
            done = record_step(step, _debit(payment))
        if done == OK:
            credit = payment.advance(State.CREDIT)
            await topics.emit(topics.payments_inflight, payment.payee, credit.encode())
        else:
            await _reject(payment, done)
    elif payment.state is State.CREDIT:
        if done is None:
            done = record_step(step, _credit(payment))
        if done == OK:
            complete = payment.advance(State.COMPLETE)
            await topics.emit(topics.payments_complete, payment.id, complete.encode())
        else:
            # Compensate: the payer was debited, so the money goes back before rejecting.
            refund = payment.advance(State.REFUND, reason=done.removeprefix(REJECTED_PREFIX))
            await topics.emit(topics.payments_inflight, payment.payer, refund.encode())
    elif payment.state is State.REFUND:
        if done is None:
            record_step(step, _refund(payment))
        await _reject(payment, REJECTED_PREFIX + (payment.reason or "refunded"))
    else:
        raise ValueError(f"payment {payment.id} in state {payment.state!r} on the account stage")


def _applied(step: str, account_id: str) -> str | None:
    """The outcome of ``step`` if it was applied before, else None.

    Its outcome record follows the balance write in one changelog partition, so after a crash
    the recovered ledger may hold the balance without the record (never the reverse). The
    account row names the last step that moved it: then the step was applied, and succeeded.
    """
    outcome = step_outcome(step)
    if outcome is None:
        account = account_row(account_id)
        if account is not None and account.last_step == step:
            outcome = record_step(step, OK)
    return outcome


def _debit(payment: PaymentEvent) -> str:
    account = account_row(payment.payer)
    if account is None:
        return REJECTED_PREFIX + "unknown payer account"
    if payment.payer == payment.payee:
        return REJECTED_PREFIX + "payer and payee must differ"
    if account.balance < payment.amount:
        return REJECTED_PREFIX + "insufficient funds"
    _move(payment.payer, account, -payment.amount, payment)  # type: ignore[operator]
    return OK


def _credit(payment: PaymentEvent) -> str:
    account = account_row(payment.payee)
    if account is None:
        return REJECTED_PREFIX + "unknown payee account"
    _move(payment.payee, account, payment.amount, payment)
    return OK


def _refund(payment: PaymentEvent) -> str:
    account = account_row(payment.payer)
    if account is None:  # accounts are never closed, so the debited payer must exist
        raise LookupError(f"refund of {payment.id}: payer {payment.payer!r} has no account")
    _move(payment.payer, account, payment.amount, payment)
    return OK


def _move(account_id: str, account: Account, delta: Any, payment: PaymentEvent) -> None:
    ledger[account_id] = account.derive(
        balance=account.balance + delta,
        last_payment=payment.id,
        last_step=f"{payment.id}:{payment.state}",
        updated_at=time.time(),
    )


async def _reject(payment: PaymentEvent, outcome: str) -> None:
    rejected = payment.advance(State.REJECTED, reason=outcome.removeprefix(REJECTED_PREFIX))
    await topics.emit(topics.payments_complete, payment.id, rejected.encode())


# ---- 4. confirmed stage ----------------------------------------------------------------


@app.agent(topics.payments_complete, name="confirmed_stage")
async def confirmed_stage(stream: StreamT) -> AsyncIterator[int]:
    """Counts each payment once as confirmed or rejected, releases its inflight value and
    publishes its outcome. ``payments.complete`` is keyed by payment id like the gateway's
    input, so this stage owns the same ``payment-status`` rows and totals rows."""
    async for count in run_batched_stage(stream, "confirmed_stage", confirm, count_complete):
        yield count


count_complete = count_batch("complete")


async def confirm(event: EventT) -> Moves | None:
    """Finish one payment; returns what it moves in the totals (counted once per batch)."""
    processed["confirmed_stage"] += 1
    payment = PaymentEvent.decode(event.message.value)
    if payment.state is State.COMPLETE:
        final = State.CONFIRMED
    elif payment.state is State.REJECTED:
        final = State.REJECTED
    else:
        raise ValueError(f"payment {payment.id} in state {payment.state!r} on the confirmed stage")
    status = payment_status.get(payment.id)
    if status is not None and status.finished_at is not None:
        if status.complete_offset != event.message.offset:
            duplicates["confirmed_stage"] += 1
            return None
        # The message that finished it, delivered again after a crash: publish the outcome
        # again (it may not have reached the topic) and let the totals row decide on counting.
        await _publish_outcome(event, payment, final, status.finished_at)
        return _outcome_moves(status, final)
    now = time.time()
    if status is None:  # not admitted here (state lost or produced elsewhere): count it anyway
        status = PaymentStatus(
            id=payment.id,
            state=final,
            payer=payment.payer,
            payee=payment.payee,
            amount=payment.amount,
            created_at=payment.created_at,
            started_at=payment.started_at,
        )
    payment_status[payment.id] = finished = status.derive(
        state=final,
        reason=payment.reason,
        finished_at=now,
        inflight=False,
        complete_offset=event.message.offset,
    )
    await _publish_outcome(event, payment, final, now)
    return _outcome_moves(finished, final)


def _outcome_moves(status: PaymentStatus, final: State) -> Moves:
    moves: Moves = [(str(final), status.amount, 1)]
    if status.admitted:  # the gateway counted it in flight: release it
        moves.append(("inflight", status.amount, -1))
    return moves


async def _publish_outcome(
    complete: EventT, payment: PaymentEvent, final: State, finished_at: float
) -> None:
    """Publish the outcome with the place and time of the message that finished it, which a
    republication after a crash repeats exactly (the metrics stage counts each place once)."""
    message = complete.message
    where = Completion(
        partition=message.partition, offset=message.offset, timestamp=message.timestamp
    )
    outcome = payment.advance(final, finished_at=finished_at, completion=where)
    await topics.emit(topics.payments_confirmed, outcome.id, outcome.encode())


# ---- accounts ledger -------------------------------------------------------------------


@app.agent(topics.accounts, name="accounts_ledger")
async def accounts_ledger(stream: StreamT) -> AsyncIterator[int]:
    """Opens and funds accounts; the only source of money entering the system."""
    async for offset in run_stage(stream, "accounts_ledger", apply_account_command):
        yield offset


async def apply_account_command(event: EventT) -> None:
    processed["accounts_ledger"] += 1
    command = AccountCommand.model_validate_json(event.message.value)
    if event.key != command.account:
        await topics.accounts.send(key=command.account, value=event.message.value)
        return
    step = f"account:{command.ref}"
    if _applied(step, command.account) is not None:
        duplicates["accounts_ledger"] += 1
        return
    account = account_row(command.account)
    now = time.time()
    if command.action is AccountAction.OPEN and account is None:
        ledger[command.account] = Account(
            balance=command.amount, opened_at=now, updated_at=now, last_step=step
        )
        record_step(step, OK)
    elif command.action is AccountAction.DEPOSIT and account is not None:
        ledger[command.account] = account.derive(
            balance=account.balance + command.amount, updated_at=now, last_step=step
        )
        record_step(step, OK)
    else:
        problem = "already exists" if account is not None else "does not exist"
        record_step(step, REJECTED_PREFIX + problem)
        await dead_letter("accounts_ledger", f"account {command.account!r} {problem}", event)
