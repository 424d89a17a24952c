"""HTTP API of the business function. Key lookups are answered by the key's owner."""

from __future__ import annotations

import logging
import time
import uuid
from decimal import Decimal
from typing import Any

from faust.web import Request, Response

from kpay_faust import topics, tracecontext
from kpay_faust.app import app, settings
from kpay_faust.engine.table import UnreadableRow
from kpay_faust.ops import spans
from kpay_faust.ops.audit import REQUEST_HEADER
from kpay_faust.payments import retention
from kpay_faust.payments.api import (
    AccountAccepted,
    AccountAnswer,
    AccountsAnswer,
    AccountsPage,
    Deposit,
    DepositAccepted,
    OpenAccount,
    PaymentAccepted,
    PaymentAnswer,
    PipelineAnswer,
    SubmitPayment,
    TraceAnswer,
)
from kpay_faust.payments.models import (
    HOP_TOPICS,
    Account,
    AccountAction,
    AccountCommand,
    AccountId,
    PaymentId,
    PaymentStatus,
)
from kpay_faust.payments.tables import STEP, account_row, ledger, payment_status
from kpay_faust.payments.totals import local_pipeline, sum_pipeline
from kpay_faust.web.audit import produced, request_id
from kpay_faust.web.cluster import (
    active_partitions,
    gather,
    require_all_partitions,
    route_to_owner,
)
from kpay_faust.web.contract import GATHERED, ROUTED, UNREADABLE, operation
from kpay_faust.web.errors import Conflict, KPayView

log = logging.getLogger(__name__)

NOT_FOUND = 404


def account_json(account_id: str, account: Account) -> dict[str, Any]:
    return {
        "id": account_id,
        "balance": str(account.balance),
        "last_payment": account.last_payment,
        "recent_payments": account.recent or [],
        "opened_at": account.opened_at,
        "updated_at": account.updated_at,
    }


def payment_json(status: PaymentStatus) -> dict[str, Any]:
    return {
        "id": status.id,
        "state": status.state,
        "reason": status.reason,
        "from": status.payer,
        "to": status.payee,
        "amount": None if status.amount is None else str(status.amount),
        "created_at": status.created_at,
        "started_at": status.started_at,
        "finished_at": status.finished_at,
        "inflight": status.inflight,
    }


async def _delivered(
    request: Request, topic: Any, key: str, value: bytes, headers: Any = None
) -> None:
    """Produce and wait for the broker's acknowledgement before answering the client; the
    event's place goes into the request's audit record."""
    metadata = await (await topic.send(key=key, value=value, headers=headers))
    produced(request, metadata.topic, metadata.partition, metadata.offset)


async def _send_account_command(
    request: Request, action: AccountAction, account_id: str, amount: Decimal
) -> str:
    command = AccountCommand(ref=uuid.uuid4().hex, action=action, account=account_id, amount=amount)
    ident = request_id(request)  # audited with its request: the ledger need not audit it again
    headers = [(REQUEST_HEADER, ident.encode())] if ident else None
    await _delivered(request, topics.accounts, account_id, command.encode(), headers)
    return command.ref


ACCOUNT_PATH = {"account_id": AccountId}
PAYMENT_PATH = {"payment_id": PaymentId}
NO_ACCOUNT = {404: "no such account"}


@app.page("/accounts")
class AccountsView(KPayView):
    @operation("accounts", AccountsAnswer, query=AccountsPage, errors=GATHERED)
    async def get(self, request: Request) -> Response:
        """One page of accounts in id order, from every worker's partitions.

        ``next`` is the ``after`` of the following page (null on the last); each worker seeks
        to the cursor in its stores, so a page costs the same however many accounts there are.
        """
        page = self.read_query(request, AccountsPage)
        answers = await gather(
            "/internal/accounts", lambda: local_accounts(page), query=page.query()
        )
        require_all_partitions((p for a in answers for p in a["partitions"]), settings.partitions)
        found = sorted((acc for a in answers for acc in a["accounts"]), key=lambda a: a["id"])
        accounts = found[: page.limit]
        more = len(found) > page.limit or any(a["more"] for a in answers)
        last = accounts[-1]["id"] if accounts else None
        unreadable = sorted(
            key
            for a in answers
            for key in a.get("unreadable", ())
            if last is None or not more or key < last
        )
        return self.reply(
            AccountsAnswer,
            {
                "accounts": accounts,
                "count": len(accounts),
                "next": last if more else None,
                "unreadable": unreadable,
            },
        )

    @operation(
        "accounts",
        AccountAccepted,
        status=202,
        body=OpenAccount,
        errors={409: "the account exists", **ROUTED},
    )
    async def post(self, request: Request) -> Response:
        """Open an account with an opening balance (a command to the accounts ledger)."""
        body = await self.read_model(request, OpenAccount)
        routed = await route_to_owner(self, request, ledger, body.id)
        if routed is not None:
            return routed
        if account_row(body.id) is not None:
            raise Conflict(f"account {body.id!r} already exists")
        ref = await _send_account_command(request, AccountAction.OPEN, body.id, body.balance)
        answer = {"id": body.id, "balance": str(body.balance), "ref": ref}
        return self.reply(AccountAccepted, answer, status=202)


@app.page("/accounts/{account_id}")
class AccountView(KPayView):
    @operation(
        "accounts", AccountAnswer, path=ACCOUNT_PATH, errors={**NO_ACCOUNT, **UNREADABLE, **ROUTED}
    )
    async def get(self, request: Request, account_id: str) -> Response:
        """One account's balance and the payments that last moved it, from its owner."""
        routed = await route_to_owner(self, request, ledger, account_id)
        if routed is not None:
            return routed
        account = account_row(account_id)
        if account is None:
            return self.error(NOT_FOUND, f"no account {account_id!r}")
        return self.reply(AccountAnswer, account_json(account_id, account))


@app.page("/accounts/{account_id}/deposits")
class DepositsView(KPayView):
    @operation(
        "accounts",
        DepositAccepted,
        status=202,
        body=Deposit,
        path=ACCOUNT_PATH,
        errors={**NO_ACCOUNT, **ROUTED},
    )
    async def post(self, request: Request, account_id: str) -> Response:
        """Add money to an account (a command to the accounts ledger)."""
        body = await self.read_model(request, Deposit)
        routed = await route_to_owner(self, request, ledger, account_id)
        if routed is not None:
            return routed
        if account_row(account_id) is None:
            return self.error(NOT_FOUND, f"no account {account_id!r}")
        ref = await _send_account_command(request, AccountAction.DEPOSIT, account_id, body.amount)
        answer = {"id": account_id, "amount": str(body.amount), "ref": ref}
        return self.reply(DepositAccepted, answer, status=202)


@app.page("/payments")
class PaymentsView(KPayView):
    @operation("payments", PaymentAccepted, status=202, body=SubmitPayment)
    async def post(self, request: Request) -> Response:
        """Submit a payment. 202 means it is durably on Kafka, not that it is done: poll
        ``GET /payments/{payment_id}`` for its outcome. A W3C ``traceparent`` header continues
        the caller's trace; the answer carries the submission's."""
        started = time.time()
        body = await self.read_model(request, SubmitPayment)
        value = body.model_dump_json(by_alias=True, exclude_none=True).encode()
        # The submission starts the payment's trace, or continues the caller's.
        caller = request.headers.get(tracecontext.HEADER)
        if spans.enabled():
            where = {"kpay.payment_id": body.id, "http.request.method": "POST"}
            trace = spans.record("submit", caller, None, started, where)
        else:
            trace = tracecontext.child(caller)
        headers = tracecontext.headers(trace)
        await _delivered(request, topics.payments_incoming, body.id, value, headers)
        answer = self.reply(PaymentAccepted, {"id": body.id}, status=202)
        answer.headers[tracecontext.HEADER] = trace
        return answer


async def one_payment(view: KPayView, request: Request, payment_id: str) -> Any:
    """The payment's status from the worker that owns its id: a routed ``Response``, a 404,
    or the ``PaymentStatus`` when this worker owns it."""
    routed = await route_to_owner(view, request, payment_status, payment_id)
    if routed is not None:
        return routed
    status = retention.unexpired_status(payment_status.get(payment_id), time.time())
    if status is None:
        return view.error(NOT_FOUND, f"no payment {payment_id!r}")
    return status


ONE_PAYMENT = {"path": PAYMENT_PATH, "errors": {404: "no such payment", **UNREADABLE, **ROUTED}}


@app.page("/payments/{payment_id}")
class PaymentView(KPayView):
    @operation("payments", PaymentAnswer, **ONE_PAYMENT)
    async def get(self, request: Request, payment_id: str) -> Response:
        """Where a payment is: ``debit`` (admitted, in flight), then ``confirmed`` or
        ``rejected`` with its reason."""
        found = await one_payment(self, request, payment_id)
        if not isinstance(found, PaymentStatus):
            return found
        return self.reply(PaymentAnswer, payment_json(found))


@app.page("/payments/{payment_id}/trace")
class PaymentTraceView(KPayView):
    @operation("payments", TraceAnswer, **ONE_PAYMENT)
    async def get(self, request: Request, payment_id: str) -> Response:
        """The payment's lineage: each step that handled it, where and when, with the time
        each took since the one before (known once the payment finished)."""
        found = await one_payment(self, request, payment_id)
        if not isinstance(found, PaymentStatus):
            return found
        return self.reply(TraceAnswer, trace_json(found))


def trace_json(status: PaymentStatus) -> dict[str, Any]:
    """Hops in order; each hop's ``ms`` runs from the end of the one before (for the first, from
    when its input was written), so they add up to ``latency_ms``: submission to outcome."""
    hops: list[dict[str, Any]] = []
    previous: float | None = None
    for step, worker, partition, offset, written, ended in status.hops or ():
        start = written if previous is None else previous
        hops.append(
            {
                "step": step,
                "worker": worker,
                "topic": f"{settings.topic_prefix}.{HOP_TOPICS.get(step, '?')}",
                "partition": partition,
                "offset": offset,
                "in": written,
                "out": ended,
                "ms": round((ended - start) * 1000, 3),
            }
        )
        previous = ended
    latency = round((hops[-1]["out"] - hops[0]["in"]) * 1000, 3) if hops else None
    return {
        "id": status.id,
        "state": status.state,
        "trace_id": status.trace_id,
        "finished": status.finished_at is not None,
        "latency_ms": latency,
        "hops": hops,
    }


@app.page("/pipeline")
class PipelineView(KPayView):
    @operation("pipeline", PipelineAnswer, errors=GATHERED)
    async def get(self, request: Request) -> Response:
        """Inflight, confirmed and rejected totals, summed over every partition and worker."""
        answers = await gather("/internal/pipeline", local_pipeline)
        per_partition: dict[str, dict[str, Any]] = {}
        for answer in answers:
            per_partition.update(answer["partitions"])
        require_all_partitions((int(p) for p in per_partition), settings.partitions)
        return self.reply(PipelineAnswer, sum_pipeline(per_partition.values()))


# ---- per-worker answers used by the gathering views above ---------------------------------


def local_accounts(page: AccountsPage) -> dict[str, Any]:
    """This worker's page: the first ``limit`` accounts of its partitions after ``after``
    (step outcomes, kept in the same table under ``~``, sort after every account id)."""
    owned = active_partitions(ledger)
    rows, more = ledger.page(
        owned, page.after, page.limit, below=STEP, prefix=page.prefix or "", raw=True
    )
    accounts, unreadable = [], []
    for key, raw in rows:
        try:
            row = ledger.decode_value(raw, key)
        except UnreadableRow as exc:  # one bad row must not hide the page: named, and logged
            log.error("GET /accounts: %s", exc)
            unreadable.append(key)
            continue
        if isinstance(row, Account):
            accounts.append(account_json(key, row))
    return {
        "partitions": sorted(owned),
        "accounts": accounts,
        "unreadable": unreadable,
        "more": more,
    }


@app.page("/internal/accounts")
class LocalAccountsView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(local_accounts(self.read_query(request, AccountsPage)))


@app.page("/internal/pipeline")
class LocalPipelineView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(local_pipeline())
