"""HTTP API of the business function. Key lookups are answered by the key's owner."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from faust.web import Request, Response

from kpay_faust import topics, tracecontext
from kpay_faust.app import app, settings
from kpay_faust.ops import spans
from kpay_faust.ops.audit import REQUEST_HEADER
from kpay_faust.payments.models import (
    HOP_TOPICS,
    Account,
    AccountAction,
    AccountCommand,
    PaymentStatus,
)
from kpay_faust.payments.requests import AccountsPage, Deposit, OpenAccount, SubmitPayment
from kpay_faust.payments.tables import STEP, account_row, ledger, payment_status
from kpay_faust.payments.totals import local_pipeline, sum_pipeline
from kpay_faust.web.audit import produced, request_id
from kpay_faust.web.cluster import (
    active_partitions,
    gather,
    require_all_partitions,
    route_to_owner,
)
from kpay_faust.web.errors import Conflict, KPayView

NOT_FOUND = 404


def account_json(account_id: str, account: Account) -> dict[str, Any]:
    return {
        "id": account_id,
        "balance": str(account.balance),
        "last_payment": account.last_payment,
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


@app.page("/accounts")
class AccountsView(KPayView):
    async def get(self, request: Request) -> Response:
        """One page of accounts in id order, from every worker's partitions; ``next`` is the
        ``after`` of the following page (null on the last)."""
        page = self.read_query(request, AccountsPage)
        answers = await gather(
            "/internal/accounts", lambda: local_accounts(page), query=page.query()
        )
        require_all_partitions((p for a in answers for p in a["partitions"]), settings.partitions)
        found = sorted((acc for a in answers for acc in a["accounts"]), key=lambda a: a["id"])
        accounts = found[: page.limit]
        more = len(found) > page.limit or any(a["more"] for a in answers)
        return self.json(
            {
                "accounts": accounts,
                "count": len(accounts),
                "next": accounts[-1]["id"] if more and accounts else None,
            }
        )

    async def post(self, request: Request) -> Response:
        body = await self.read_model(request, OpenAccount)
        routed = await route_to_owner(self, request, ledger, body.id)
        if routed is not None:
            return routed
        if account_row(body.id) is not None:
            raise Conflict(f"account {body.id!r} already exists")
        ref = await _send_account_command(request, AccountAction.OPEN, body.id, body.balance)
        return self.json({"id": body.id, "balance": str(body.balance), "ref": ref}, status=202)


@app.page("/accounts/{account_id}")
class AccountView(KPayView):
    async def get(self, request: Request, account_id: str) -> Response:
        routed = await route_to_owner(self, request, ledger, account_id)
        if routed is not None:
            return routed
        account = account_row(account_id)
        if account is None:
            return self.error(NOT_FOUND, f"no account {account_id!r}")
        return self.json(account_json(account_id, account))


@app.page("/accounts/{account_id}/deposits")
class DepositsView(KPayView):
    async def post(self, request: Request, account_id: str) -> Response:
        body = await self.read_model(request, Deposit)
        routed = await route_to_owner(self, request, ledger, account_id)
        if routed is not None:
            return routed
        if account_row(account_id) is None:
            return self.error(NOT_FOUND, f"no account {account_id!r}")
        ref = await _send_account_command(request, AccountAction.DEPOSIT, account_id, body.amount)
        return self.json({"id": account_id, "amount": str(body.amount), "ref": ref}, status=202)


@app.page("/payments")
class PaymentsView(KPayView):
    async def post(self, request: Request) -> Response:
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
        answer = self.json({"id": body.id}, status=202)
        answer.headers[tracecontext.HEADER] = trace
        return answer


class OnePaymentView(KPayView):
    """One payment's status, answered by the worker that owns its id, shown by ``show``."""

    def show(self, status: PaymentStatus) -> dict[str, Any]:
        raise NotImplementedError

    async def get(self, request: Request, payment_id: str) -> Response:
        routed = await route_to_owner(self, request, payment_status, payment_id)
        if routed is not None:
            return routed
        status = payment_status.get(payment_id)
        if status is None:
            return self.error(NOT_FOUND, f"no payment {payment_id!r}")
        return self.json(self.show(status))


@app.page("/payments/{payment_id}")
class PaymentView(OnePaymentView):
    def show(self, status: PaymentStatus) -> dict[str, Any]:
        return payment_json(status)


@app.page("/payments/{payment_id}/trace")
class PaymentTraceView(OnePaymentView):
    """The payment's lineage: each step that handled it, where and when, with the time each
    took since the one before (known once the payment finished)."""

    def show(self, status: PaymentStatus) -> dict[str, Any]:
        return trace_json(status)


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
    async def get(self, request: Request) -> Response:
        """Inflight, confirmed and rejected totals, summed over every partition and worker."""
        answers = await gather("/internal/pipeline", local_pipeline)
        per_partition: dict[str, dict[str, Any]] = {}
        for answer in answers:
            per_partition.update(answer["partitions"])
        require_all_partitions((int(p) for p in per_partition), settings.partitions)
        return self.json(sum_pipeline(per_partition.values()))


# ---- per-worker answers used by the gathering views above ---------------------------------


def local_accounts(page: AccountsPage) -> dict[str, Any]:
    """This worker's page: the first ``limit`` accounts of its partitions after ``after``
    (step outcomes, kept in the same table under ``~``, sort after every account id)."""
    owned = active_partitions(ledger)
    rows, more = ledger.page(owned, page.after, page.limit, below=STEP)
    accounts = [account_json(key, row) for key, row in rows if isinstance(row, Account)]
    return {"partitions": sorted(owned), "accounts": accounts, "more": more}


@app.page("/internal/accounts")
class LocalAccountsView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(local_accounts(self.read_query(request, AccountsPage)))


@app.page("/internal/pipeline")
class LocalPipelineView(KPayView):
    async def get(self, request: Request) -> Response:
        return self.json(local_pipeline())
