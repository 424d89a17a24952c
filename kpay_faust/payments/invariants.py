"""A periodic check of this worker's books: totals that went negative are logged and exposed
(``kpay_invariant_violations``), so an alert can fire; nothing is corrected behind anyone's
back."""

from __future__ import annotations

import logging

from kpay_faust.app import app
from kpay_faust.instruments import INVARIANT_VIOLATIONS
from kpay_faust.payments.totals import local_pipeline, violations

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds

_reported: list[str] = []


def check() -> list[str]:
    """Check this worker's partitions; returns the violations (also logged when they change)."""
    found = violations(local_pipeline()["partitions"])
    INVARIANT_VIOLATIONS.set(len(found))
    if found and found != _reported:
        log.error("books out of balance on this worker: %s", "; ".join(found))
    _reported[:] = found
    return found


@app.timer(CHECK_EVERY)
async def check_invariants() -> None:
    try:
        check()
    except Exception:  # a timer that raises stops the worker: report and try again next time
        log.exception("invariant check failed; retrying")
