"""``faust -A kpay reconcile``: ask a worker whether the books of the whole cluster reconcile."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from faust.cli import AppCommand, option

from kpay_faust.app import app, settings


def worker_url() -> str:
    return f"http://{settings.web_host}:{settings.web_port}"


@app.command(
    option("--url", type=str, default=None, help="A worker's address (default: this one's)."),
    option("--token", type=str, default=None, help="Bearer token (default: $KPAY_TOKEN)."),
    option("--json", "as_json", is_flag=True, default=False, help="Print the whole report."),
)
async def reconcile(self: AppCommand, url: str | None, token: str | None, as_json: bool) -> None:
    """Check that every balance, total and payment in flight adds up; exits 1 when not."""
    request = urllib.request.Request(f"{url or worker_url()}/reconcile")
    token = token or os.environ.get("KPAY_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            report = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"reconcile: {exc.code} {exc.read().decode(errors='replace')}") from None
    except OSError as exc:
        raise SystemExit(f"reconcile: cannot reach {url or worker_url()}: {exc}") from None
    if as_json:
        self.say(json.dumps(report, indent=2))
    else:
        money, payments = report["money"], report["payments"]
        self.say(
            f"balances {money['balances']} of {money['funded']} funded, {money['in_transit']} "
            f"in transit ({report['conservation']}); {report['accounts']} accounts; "
            f"{payments['inflight']['count']} payments in flight "
            f"({payments['admitted']['count']} admitted, {payments['released']['count']} "
            "released)"
        )
        for failure in report["failures"]:
            self.say(f"FAILED: {failure}")
        self.say("passed" if report["passed"] else "failed")
    if not report["passed"]:
        raise SystemExit(1)
