"""``faust -A kpay reconcile``: ask a worker whether the books of the whole cluster reconcile.
``faust -A kpay dlq list|replay``: the dead letters, read and replayed straight from Kafka.
``faust -A kpay audit``: the audit trail, read straight from Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import click
from faust.cli import AppCommand, argument, option

from kpay_faust import topics
from kpay_faust.app import app
from kpay_faust.ops import audit as audit_records
from kpay_faust.ops import audit_trail
from kpay_faust.ops import dlq as dead_letters
from kpay_faust.ops.reading import SINCE_MAX, reader, writer
from kpay_faust.web.client import TOKEN_OPTION, URL_OPTION, call, expect

SINCE_OPTION = option(
    "--since", type=click.FloatRange(0, SINCE_MAX), default=None, help="Only since (epoch s)."
)


@app.command(
    URL_OPTION,
    TOKEN_OPTION,
    option("--json", "as_json", is_flag=True, default=False, help="Print the whole report."),
)
async def reconcile(self: AppCommand, url: str | None, token: str | None, as_json: bool) -> None:
    """Check that every balance, total and payment in flight adds up; exits 1 when not."""
    report = expect("reconcile", call("reconcile", "GET", url, "/reconcile", token), 200)
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


def dead_letter_positions(values: tuple[str, ...]) -> set[tuple[int, int]] | None:
    """``--offset 3@120`` (dead-letter partition @ offset) values as pairs; None when none."""
    if not values:
        return None
    pairs = set()
    for value in values:
        partition, at, offset = value.partition("@")
        if not (at and partition.isdigit() and offset.isdigit()):
            raise click.BadParameter(f"{value!r}: give PARTITION@OFFSET of the dead letter")
        pairs.add((int(partition), int(offset)))
    return pairs


@app.command(
    argument("action", type=click.Choice(["list", "replay"])),
    option("--stage", type=str, default=None, help="Only dead letters of this stage."),
    SINCE_OPTION,
    option("--limit", type=int, default=100, help="At most this many (default 100)."),
    option("--offset", "offsets", multiple=True, help="PARTITION@OFFSET of a dead letter."),
    option("--dry-run", is_flag=True, default=False, help="Say what would be replayed."),
    option(
        "--value-file",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="A corrected value to replay instead (with exactly one --offset).",
    ),
)
async def dlq(
    self: AppCommand,
    action: str,
    stage: str | None,
    since: float | None,
    limit: int,
    offsets: tuple[str, ...],
    dry_run: bool,
    value_file: str | None,
) -> None:
    """List dead letters, or replay them to the topics they came from (safe to repeat)."""
    wanted = dead_letter_positions(offsets)
    if value_file is not None and (wanted is None or len(wanted) != 1):
        raise click.UsageError("--value-file replaces one record: give exactly one --offset")
    topic = topics.dlq.get_topic_name()
    async with reader() as client:
        found = await dead_letters.read(
            client, stage=stage, since=since, limit=limit, wanted=wanted
        )
        if action == "list":
            for item in found:
                self.say(json.dumps(dead_letters.as_json(item)))
            self.say(f"{len(found)} dead letters")
            return
        value = Path(value_file).read_bytes() if value_file else None
        if dry_run:
            done = await dead_letters.replay(client, None, found, topic, value)
        else:
            async with writer() as producer:
                done = await dead_letters.replay(client, producer, found, topic, value)
                for item, entry in zip(found, done, strict=True):
                    record = audit_records.of_replay(entry, f"dead letter {topic}[{item.where()}]")
                    await producer.send_and_wait(
                        topics.audit.get_topic_name(),
                        record.model_dump_json().encode(),
                        key=record.principal.encode(),
                    )
    for entry in done:
        self.say(json.dumps(entry))
    replayed = sum(1 for entry in done if entry["replayed"])
    self.say(f"{replayed} of {len(done)} dead letters replayed")
    if not dry_run and replayed < len(done):
        raise SystemExit(1)


@app.command(
    option("--principal", type=str, default=None, help="Only what this principal did."),
    SINCE_OPTION,
    option("--limit", type=int, default=100, help="At most this many (default 100)."),
)
async def audit(self: AppCommand, principal: str | None, since: float | None, limit: int) -> None:
    """The audit trail: who did what, from where, and what came of it (one JSON line each)."""
    async with reader() as client:
        found = await audit_trail.audit_records(
            client, principal=principal, since=since, limit=limit
        )
    for item in found:
        self.say(item.item.model_dump_json(exclude_none=True))
    self.say(f"{len(found)} audit records")


@app.command(
    option(
        "--level",
        type=click.Choice(["WARNING", "ERROR", "CRITICAL"]),
        default="WARNING",
        help="Only this level and above.",
    ),
    SINCE_OPTION,
    option("--limit", type=int, default=100, help="At most this many (default 100)."),
)
async def logs(self: AppCommand, level: str, since: float | None, limit: int) -> None:
    """Every worker's warnings and errors from kpay.logs (one JSON line each)."""
    async with reader() as client:
        found = await audit_trail.log_records(client, level=level, since=since, limit=limit)
    for item in found:
        self.say(item.item.model_dump_json(exclude_none=True))
    self.say(f"{len(found)} log records")
