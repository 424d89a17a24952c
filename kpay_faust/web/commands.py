"""``faust -A kpay token create --role ROLE --name NAME``: a new bearer token; ``faust -A kpay
load start|stop|status``: the worker's demo load."""

from __future__ import annotations

import json

import click
from faust.cli import AppCommand, argument, option

from kpay_faust.app import app, settings
from kpay_faust.web.client import TOKEN_OPTION, URL_OPTION, call, expect
from kpay_faust.web.tokens import CALLER_ROLES, Role, create_token


@app.command(
    argument("action", type=click.Choice(["create"])),
    option("--role", type=click.Choice(CALLER_ROLES), required=True, help="What it may do."),
    option("--name", type=str, required=True, help="Who it is for (in logs and audit)."),
)
async def token(self: AppCommand, action: str, role: str, name: str) -> None:
    """Create a bearer token; only its hash is kept, in KPAY_TOKENS_FILE. Prints the token as
    the last line: it is shown this once."""
    path = settings.tokens_file
    created = create_token(path, Role[role], name)
    self.say(f"{role} token for {name!r} recorded in {path} (mode 0600); keep it secret:")
    self.say(created)


@app.command(
    argument("action", type=click.Choice(["start", "stop", "status"])),
    URL_OPTION,
    TOKEN_OPTION,
    option("--rate", type=float, default=100.0, help="Payments offered a second (start)."),
    option("--accounts", type=int, default=100, help="Demo accounts (start)."),
    option("--seconds", type=float, default=600.0, help="How long it runs (start)."),
)
async def load(
    self: AppCommand,
    action: str,
    url: str | None,
    token: str | None,
    rate: float,
    accounts: int,
    seconds: float,
) -> None:
    """The worker's demo load (the console's Load tab): start, stop, or its status."""
    if action == "start":
        body = {"per_second": rate, "accounts": accounts, "seconds": seconds}
        answer = expect("load", call("load", "POST", url, "/load", token, body), 202)
    elif action == "stop":
        answer = expect("load", call("load", "DELETE", url, "/load", token), 200)
    else:
        answer = expect("load", call("load", "GET", url, "/load", token), 200)
    self.say(json.dumps(answer))
