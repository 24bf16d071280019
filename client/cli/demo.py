"""``docket demo``: a whole mediated exchange against a local server."""

from __future__ import annotations

import argparse
from pathlib import Path

from client.cli.context import Context
from client.cli.parsing import Commands
from client.errors import VerificationError
from protocol.encoding import JSONValue


def register(commands: Commands) -> None:
    """Add ``demo``."""
    p = commands.add("demo", cmd_demo, "run a whole mediated exchange against a local server")
    p.add_argument("--workdir", metavar="DIR", help="where to put everything (default: temp)")
    p.add_argument(
        "--desk",
        action="store_true",
        help="then open Docket Desk as the mediator and as a delegate (until Ctrl-C)",
    )
    p.add_argument(
        "--no-browser", action="store_true", help="with --desk: only print the launch URLs"
    )


async def cmd_demo(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket demo``."""
    from client import demo

    then = None
    if args.desk:
        from client.desk.demo import open_desks

        then = open_desks(browser=not args.no_browser)
    result = await demo.run_demo(
        Path(args.workdir) if args.workdir else None, echo=not ctx.json, then=then
    )
    if not result.get("audit_ok"):
        ctx.pending_error = VerificationError("the demo's audit did not pass", code="audit")
    return result
