"""``docket desk``: the local browser app on this home (:mod:`client.desk`)."""

from __future__ import annotations

import argparse

from client.cli.context import Context
from client.cli.parsing import Commands
from protocol.encoding import JSONValue


def register(commands: Commands) -> None:
    """Add ``desk``."""
    p = commands.add("desk", cmd_desk, "open Docket Desk, the local browser app, on this home")
    p.add_argument(
        "--no-browser", action="store_true", help="only print the launch URL, open no browser"
    )


async def cmd_desk(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket desk [--no-browser]``: serve the desk on 127.0.0.1 until interrupted."""
    from client.desk.run import serve

    def say(line: str) -> None:
        # Printed at once (not queued): the command runs until interrupted.
        print(line, flush=True)

    async with ctx.client() as client:
        label = client.member_id() or "this device"
        await serve([(label, client)], browser=not args.no_browser, say=say)
    return {"stopped": True}
