"""``docket demo``: a whole mediated exchange against a local server; ``docket demo
--clean`` removes the folders it left behind (key stores under a published passphrase)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from client.cli.context import Context
from client.cli.parsing import Commands
from client.errors import StateError, UsageError, VerificationError
from protocol.encoding import JSONValue

# Mirrors client.demo.DEMO_MARKER and its folder prefix; kept here so that cleaning up
# does not import the demo (and its process machinery).
_MARKER = ".docket-demo"
_PREFIX = "docket-demo-"


def register(commands: Commands) -> None:
    """Add ``demo``."""
    p = commands.add("demo", cmd_demo, "run a whole mediated exchange against a local server")
    p.add_argument("--workdir", metavar="DIR", help="where to put everything (default: temp)")
    p.add_argument(
        "--clean",
        action="store_true",
        help="remove the demo's folders (with --workdir: that one) instead of running it; "
        "their key stores are protected only by the published demo passphrase",
    )
    p.add_argument(
        "--desk",
        action="store_true",
        help="then open Docket Desk as the mediator and as a delegate (until Ctrl-C)",
    )
    p.add_argument(
        "--no-browser", action="store_true", help="with --desk: only print the launch URLs"
    )


def demo_folders(workdir: Path | None) -> list[Path]:
    """The folders ``--clean`` removes: ``workdir`` if the demo made it, else every
    ``docket-demo-*`` folder of the system temporary folder that carries the marker."""
    if workdir is not None:
        if not (workdir / _MARKER).is_file():
            raise UsageError(f"{workdir} is not a folder 'docket demo' made; nothing removed")
        return [workdir]
    root = Path(tempfile.gettempdir())
    return sorted(
        p
        for p in root.glob(f"{_PREFIX}*")
        if p.is_dir() and not p.is_symlink() and (p / _MARKER).is_file()
    )


async def cmd_demo(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket demo [--clean]``."""
    workdir = Path(args.workdir) if args.workdir else None
    if args.clean:
        removed: list[JSONValue] = []
        for folder in demo_folders(workdir):
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                raise StateError(f"cannot remove {folder}: {exc.strerror}") from exc
            removed.append(str(folder))
            ctx.say(f"removed {folder}")
        if not removed:
            ctx.say("No demo folders to remove.")
        return {"removed": removed}
    from client import demo

    then = None
    if args.desk:
        from client.desk.demo import open_desks

        then = open_desks(browser=not args.no_browser)
    result = await demo.run_demo(workdir, echo=not ctx.json, then=then)
    if not result.get("audit_ok"):
        ctx.pending_error = VerificationError("the demo's audit did not pass", code="audit")
    return result
