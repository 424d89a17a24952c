"""``faust -A kpay token create --role ROLE --name NAME``: a new bearer token."""

from __future__ import annotations

import click
from faust.cli import AppCommand, argument, option

from kpay_faust.app import app, settings
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
