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
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from faust import EventT, TopicT
from pydantic import ValidationError

from kpay_faust import topics, tracecontext
from kpay_faust.app import app, settings
from kpay_faust.control.state import control
from kpay_faust.engine.stages import (
    NOT_DONE,
    called_by_fetch_loop,
    has_header,
    header,
    key_text,
    make_current,
)
from kpay_faust.instruments import STAGE_DUPLICATES, STAGE_EVENTS
from kpay_faust.ops import audit, spans
from kpay_faust.ops.deadletter import dead_letter
from kpay_faust.ops.dlq import is_replay
from kpay_faust.payments import inflight, retention
from kpay_faust.payments.models import (
    Account,
    AccountAction,
    AccountCommand,
    Completion,
    Hop,
    PaymentEvent,
    PaymentStatus,
    PaymentSubmission,
    State,
    parse_amount,
)
from kpay_faust.payments.tables import (
    account_row,
    ledger,
    payment_status,
    record_step,
    step_outcome,
)
from kpay_faust.payments.totals import Moves, count_batch
from kpay_faust.web.errors import describe

log = logging.getLogger(__name__)

OK = "ok"
ZERO = Decimal("0.00")
#: This worker in a payment's lineage.
WORKER = f"{settings.web_host}:{settings.web_port}"
REJECTED_PREFIX = "rejected: "
_PAYMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$")

_counted = {
    stage: STAGE_EVENTS.labels(stage)
    for stage in ("inflight_gateway", "account_stage", "confirmed_stage", "accounts_ledger")
}
_repeated = {stage: STAGE_DUPLICATES.labels(stage) for stage in _counted}


def _value(event: EventT) -> bytes:
    """The event's value as bytes (a tombstone, which no KPay writer sends, as empty)."""
    return event.message.value or b""


def _decode_document(raw: bytes) -> Any:
    """JSON in one pass; the slower stdlib parser only for what orjson refuses (big integers,
    NaN), so such payments are rejected with a reason instead of dead-lettered."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw, parse_int=_json_int)


def _json_int(text: str) -> int | float:
    """A JSON integer; one too long for ``int`` (Python refuses over 4,300 digits) becomes a
    float, as orjson makes any integer beyond 64 bits, and is refused as an amount with a
    reason like any other JSON number."""
    return int(text) if len(text) < 4000 else float(text)


# ---- 1. inflight gateway ---------------------------------------------------------------


count_incoming = count_batch("incoming")


async def admit(event: EventT) -> Moves | None:
    """Admits payments: idempotency by id, validation, inflight total, ``started_at`` stamp;
    returns what it adds to the totals (counted once per batch)."""
    # Paused or rate-limited: called by the fetch loop, leave it in Kafka (its partition is
    # fetched again from it); on Faust's path, wait here. A rebalance while it waited: the
    # partition's owner gets it again.
    if not await control.admission_gate(event, wait=not called_by_fetch_loop()):
        return NOT_DONE
    _counted["inflight_gateway"].inc()
    try:
        doc = _decode_document(_value(event))
    except ValueError as exc:
        await dead_letter("inflight_gateway", f"not JSON: {exc}", event)
        return None
    if not isinstance(doc, dict):
        await dead_letter("inflight_gateway", "a payment must be a JSON object", event)
        return None
    key = key_text(event)
    payment_id = doc.get("id", key)
    if not isinstance(payment_id, str) or not _PAYMENT_ID.match(payment_id):
        await dead_letter("inflight_gateway", "missing or invalid payment id", event)
        return None
    if key != payment_id:
        # Idempotency is per partition: move the payment to the partition its id hashes to.
        await topics.payments_incoming.send(key=payment_id, value=_value(event))
        return None
    status = retention.unexpired_status(payment_status.get(payment_id), time.time())
    if status is not None:
        return await _resubmitted(event, status, doc)
    try:
        submission = PaymentSubmission.model_validate(doc)
    except ValidationError as exc:
        await _reject_at_gateway(event, payment_id, doc, describe(exc))
        return None
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
        trace_id=new_trace(event),
    )
    payment_status[payment_id] = status
    inflight.index.admitted(event.message.partition, payment_id, now)
    await _emit_admission(status, event)
    return _admission_moves(submission.amount)


inflight_gateway = app.stage(
    topics.payments_incoming, "inflight_gateway", admit, dead_letter, count_incoming
)


def _admission_moves(amount: Decimal | None) -> Moves:
    return [("inflight", amount, 1), ("admitted", amount, 1)]


async def _emit_admission(status: PaymentStatus, source: EventT) -> None:
    event = PaymentEvent(
        id=status.id,
        payer=status.payer,
        payee=status.payee,
        amount=status.amount,
        state=State.DEBIT,
        created_at=status.created_at,
        started_at=status.started_at,
    )
    headers = traced(source, "gateway", status.id, status.trace_id or new_trace(source))
    if status.state == State.REJECTED:
        rejected = event.after(hop("gateway", source), State.REJECTED, reason=status.reason)
        await app.emit(topics.payments_complete, status.id, rejected.encode(), headers)
    else:
        admitted = event.after(hop("gateway", source), State.DEBIT)
        await app.emit(topics.payments_inflight, event.payer or "", admitted.encode(), headers)


def new_trace(source: EventT) -> str:
    """The trace id of a payment: its submission's (``traceparent`` header), else a new one."""
    parent = header(source.message.headers, tracecontext.HEADER)
    return tracecontext.trace_id(tracecontext.child(parent))


def traced(
    source: EventT, step: str, payment_id: str, trace: str | None = None
) -> list[tuple[str, bytes]]:
    """Headers of the record a step writes: a new span of the trace its input record carries
    (the gateway's: of the payment's ``trace``), recorded for the tracing backend if one is set
    (``ops.spans``)."""
    parent = header(source.message.headers, tracecontext.HEADER)
    if spans.enabled():
        message = source.message
        attributes = {
            "messaging.system": "kafka",
            "messaging.destination.name": message.topic,
            "messaging.kafka.partition": message.partition,
            "messaging.kafka.offset": message.offset,
            "kpay.payment_id": payment_id,
            "kpay.worker": WORKER,
        }
        started = message.timestamp or time.time()
        traceparent = spans.record(step, parent, trace, started, attributes)
    elif trace is not None:
        traceparent = tracecontext.continuing(trace)
    else:
        traceparent = tracecontext.child(parent)
    return tracecontext.headers(traceparent)


def hop(step: str, source: EventT, ended: float | None = None) -> Hop:
    """This worker's hop for ``step`` on the record ``source``, ending ``ended`` (now)."""
    message = source.message
    written = round(message.timestamp or 0.0, 3)
    end = round(time.time() if ended is None else ended, 3)
    return (step, WORKER, message.partition, message.offset, written, end)


async def _resubmitted(event: EventT, status: PaymentStatus, doc: dict) -> Moves | None:
    if status.source_offset == event.message.offset:
        # The message that admitted it, delivered again after a crash: emit again, and count
        # it unless the totals row already has (it knows the offsets it counted).
        await _emit_admission(status, event)
        return _admission_moves(status.amount) if status.admitted else None
    _repeated["inflight_gateway"].inc()
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
        trace_id=new_trace(event),
    )
    payment_status[payment_id] = status
    await _emit_admission(status, event)


# ---- 2 and 3. account stage: debit, credit, refund ---------------------------------------


async def apply_to_account(event: EventT) -> None:
    """Moves money on the account the event is keyed by: debit payer, credit payee, refund."""
    _counted["account_stage"].inc()
    retention.steps.sweep(event.message.partition, written=1)
    payment = PaymentEvent.decode(_value(event))
    if payment.amount is None or payment.payer is None or payment.payee is None:
        raise ValueError(f"payment {payment.id} lacks an amount or an account")
    move = Transfer(payment.payer, payment.payee, payment.amount)
    step = f"{payment.id}:{payment.state}"
    done = _applied(step, move.payee if payment.state is State.CREDIT else move.payer)
    if done is not None:
        _repeated["account_stage"].inc()
    if payment.state is State.DEBIT:
        if done is None:
            done = record_step(step, _debit(payment, move))
        if done == OK:
            await _pass_on(
                event, "debit", payment, State.CREDIT, topics.payments_inflight, move.payee
            )
        else:
            await _reject(event, "debit", payment, done)
    elif payment.state is State.CREDIT:
        if done is None:
            done = record_step(step, _credit(payment, move))
        if done == OK:
            await _pass_on(event, "credit", payment, State.COMPLETE, topics.payments_complete)
        else:
            # Compensate: the payer was debited, so the money goes back before rejecting.
            reason = done.removeprefix(REJECTED_PREFIX)
            await _pass_on(
                event, "credit", payment, State.REFUND, topics.payments_inflight, move.payer, reason
            )
    elif payment.state is State.REFUND:
        if done is None:
            record_step(step, _refund(payment, move))
        await _reject(event, "refund", payment, REJECTED_PREFIX + (payment.reason or "refunded"))
    else:
        raise ValueError(f"payment {payment.id} in state {payment.state!r} on the account stage")


account_stage = app.stage(topics.payments_inflight, "account_stage", apply_to_account, dead_letter)


def _applied(step: str, account_id: str) -> str | None:
    """The outcome of ``step`` if it was applied before, else None.

    Its outcome record follows the balance write in one changelog partition, so after a crash
    the recovered ledger may hold the balance without the record (never the reverse). The
    account row names the last step that moved it: then the step was applied, and succeeded,
    unless it was before the retention horizon.
    """
    outcome = retention.unexpired_outcome(step_outcome(step), time.time())
    if outcome is None:
        account = account_row(account_id)
        if (
            account is not None
            and account.last_step == step
            # a step older than the retention horizon had its record deleted, not lost: its
            # id may be reused by a new payment (every ledger write stamps ``updated_at``)
            and retention.within_horizon(account.updated_at, time.time())
        ):
            outcome = record_step(step, OK)
    return outcome


@dataclass(frozen=True)
class Transfer:
    """The accounts and amount of a payment on the account stage, all known."""

    payer: str
    payee: str
    amount: Decimal


def _debit(payment: PaymentEvent, move: Transfer) -> str:
    account = account_row(move.payer)
    if account is None:
        return REJECTED_PREFIX + "unknown payer account"
    if move.payer == move.payee:
        return REJECTED_PREFIX + "payer and payee must differ"
    if account.balance < move.amount:
        return REJECTED_PREFIX + "insufficient funds"
    _move(move.payer, account, payment, debit=move.amount)
    return OK


def _credit(payment: PaymentEvent, move: Transfer) -> str:
    account = account_row(move.payee)
    if account is None:
        return REJECTED_PREFIX + "unknown payee account"
    _move(move.payee, account, payment, credit=move.amount)
    return OK


def _refund(payment: PaymentEvent, move: Transfer) -> str:
    account = account_row(move.payer)
    if account is None:  # accounts are never closed, so the debited payer must exist
        raise LookupError(f"refund of {payment.id}: payer {move.payer!r} has no account")
    _move(move.payer, account, payment, credit=move.amount)  # the debit given back
    return OK


def _move(
    account_id: str,
    account: Account,
    payment: PaymentEvent,
    *,
    debit: Decimal = ZERO,
    credit: Decimal = ZERO,
) -> None:
    """Write the account's new balance with what moved it (``Account.debited``/``credited``)."""
    flows = {}
    if account.debited is not None and account.credited is not None:
        flows = {"debited": account.debited + debit, "credited": account.credited + credit}
    ledger[account_id] = account.derive(
        balance=account.balance + credit - debit,
        last_payment=payment.id,
        recent=account.recent_after(payment.id),
        last_step=f"{payment.id}:{payment.state}",
        updated_at=time.time(),
        **flows,
    )


async def _pass_on(
    event: EventT,
    step: str,
    payment: PaymentEvent,
    state: State,
    topic: TopicT,
    key: str | None = None,
    reason: str | None = None,
) -> None:
    """Emit the payment's next event (keyed by ``key``, else its id), with this step's hop in
    its lineage and a new span of its trace."""
    following = payment.after(hop(step, event), state, **({"reason": reason} if reason else {}))
    headers = traced(event, step, payment.id)
    await app.emit(topic, key or payment.id, following.encode(), headers)


async def _reject(event: EventT, step: str, payment: PaymentEvent, outcome: str) -> None:
    reason = outcome.removeprefix(REJECTED_PREFIX)
    await _pass_on(event, step, payment, State.REJECTED, topics.payments_complete, reason=reason)


# ---- 4. confirmed stage ----------------------------------------------------------------


count_complete = count_batch("complete")


def finish_complete(done: list[tuple[EventT, Moves | None]]) -> None:
    """Count the batch in the totals, then let each of its partitions delete the statuses of
    payments finished before the retention horizon (``payments.retention``)."""
    count_complete(done)
    last: dict[int, EventT] = {}
    written: dict[int, int] = {}
    for event, _ in done:
        partition = event.message.partition
        last[partition] = event
        written[partition] = written.get(partition, 0) + 1
    for partition, event in last.items():
        make_current(event)
        retention.statuses.sweep(partition, written[partition])


async def confirm(event: EventT) -> Moves | None:
    """Counts each payment once as confirmed or rejected, releases its inflight value and
    publishes its outcome; returns what it moves in the totals (counted once per batch).
    ``payments.complete`` is keyed by payment id like the gateway's input, so this stage owns
    the same ``payment-status`` rows and totals rows."""
    _counted["confirmed_stage"].inc()
    payment = PaymentEvent.decode(_value(event))
    if payment.state is State.COMPLETE:
        final = State.CONFIRMED
    elif payment.state is State.REJECTED:
        final = State.REJECTED
    else:
        raise ValueError(f"payment {payment.id} in state {payment.state!r} on the confirmed stage")
    status = payment_status.get(payment.id)
    if status is not None and status.finished_at is not None:
        if status.complete_offset != event.message.offset:
            _repeated["confirmed_stage"].inc()
            return None
        # The message that finished it, delivered again after a crash: publish the outcome
        # again (it may not have reached the topic) and let the totals row decide on counting.
        hops = tuple(tuple(h) for h in status.hops or ())
        await _publish_outcome(event, payment, final, status.finished_at, hops)
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
    inflight.index.finished(event.message.partition, payment.id)
    hops = (*(payment.hops or ()), hop("confirmed", event, now))
    payment_status[payment.id] = finished = status.derive(
        state=final,
        reason=payment.reason,
        finished_at=now,
        inflight=False,
        complete_offset=event.message.offset,
        hops=[list(h) for h in hops],
        trace_id=status.trace_id or new_trace(event),
    )
    await _publish_outcome(event, payment, final, now, hops)
    return _outcome_moves(finished, final)


confirmed_stage = app.stage(
    topics.payments_complete, "confirmed_stage", confirm, dead_letter, finish_complete
)


def _outcome_moves(status: PaymentStatus, final: State) -> Moves:
    moves: Moves = [(str(final), status.amount, 1)]
    if status.admitted:  # the gateway counted it in flight: release it
        moves += [("inflight", status.amount, -1), ("released", status.amount, 1)]
    return moves


async def _publish_outcome(
    complete: EventT, payment: PaymentEvent, final: State, finished_at: float, hops: Any
) -> None:
    """Publish the outcome with the place and time of the message that finished it, which a
    republication after a crash repeats exactly (the metrics stage counts each place once)."""
    message = complete.message
    where = Completion(
        partition=message.partition, offset=message.offset, timestamp=message.timestamp
    )
    outcome = payment.advance(final, finished_at=finished_at, completion=where, hops=hops)
    headers = traced(complete, "confirmed", payment.id)
    await app.emit(topics.payments_confirmed, outcome.id, outcome.encode(), headers)


# ---- accounts ledger -------------------------------------------------------------------


async def apply_account_command(event: EventT) -> None:
    """Opens and funds accounts; the only source of money entering the system."""
    _counted["accounts_ledger"].inc()
    headers = event.message.headers
    # Commands over HTTP are audited with their request, replays by the CLI: the rest here.
    audited = not (has_header(headers, audit.REQUEST_HEADER) or is_replay(headers))
    try:
        command = AccountCommand.model_validate_json(_value(event))
    except ValidationError as exc:
        if audited:
            await _audit_account_command(event, "account", describe(exc))
        raise  # dead-lettered
    if key_text(event) != command.account:
        await topics.accounts.send(key=command.account, value=_value(event))
        return
    step = f"account:{command.ref}"
    done = _applied(step, command.account)
    if done is not None and (done == OK or not is_replay(headers)):
        _repeated["accounts_ledger"].inc()
        return  # applied before; one rejected before is tried again only when replayed
    problem = await _apply(event, command, step)
    if audited:
        await _audit_account_command(event, f"account {command.action}", problem)


accounts_ledger = app.stage(topics.accounts, "accounts_ledger", apply_account_command, dead_letter)


async def _audit_account_command(event: EventT, action: str, refused: str | None) -> None:
    message = event.message
    where = (message.topic, message.partition, message.offset)
    await audit.write(audit.from_topic(None, action, message.value, where, refused))


async def _apply(event: EventT, command: AccountCommand, step: str) -> str | None:
    """Open or fund the account; the reason when it cannot be (then dead-lettered)."""
    account = account_row(command.account)
    now = time.time()
    if command.action is AccountAction.OPEN and account is None:
        ledger[command.account] = Account(
            balance=command.amount,
            opened_at=now,
            updated_at=now,
            last_step=step,
            funded=command.amount,
            debited=ZERO,
            credited=ZERO,
        )
        record_step(step, OK)
    elif command.action is AccountAction.DEPOSIT and account is not None:
        funded = None if account.funded is None else account.funded + command.amount
        ledger[command.account] = account.derive(
            balance=account.balance + command.amount, updated_at=now, last_step=step, funded=funded
        )
        record_step(step, OK)
    else:
        problem = "already exists" if account is not None else "does not exist"
        record_step(step, REJECTED_PREFIX + problem)
        reason = f"account {command.account!r} {problem}"
        await dead_letter("accounts_ledger", reason, event)
        return reason
    return None
