"""The ``docket`` entry point: build the parser from the command modules, run one
command, print its result, and turn every failure into an exit code and one line on
stderr."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import NoReturn

from client.cli import (
    admin,
    audit,
    demo,
    desk,
    devices,
    drafts,
    identity,
    log,
    negotiation,
    redlines,
    server,
    witnesses,
)
from client.cli.context import Context, Handler
from client.cli.output import json_safe, print_lines, terminal_safe
from client.cli.parsing import Commands, Parser, global_options
from client.errors import (
    EXIT_OK,
    EXIT_STATE,
    EXIT_TOO_LARGE,
    EXIT_USAGE,
    EXIT_VERIFY,
    Alarm,
    ClientError,
)
from protocol.encoding import JSONValue
from protocol.errors import ProtocolError

# Each command module's ``register``, in the order ``docket --help`` lists them.  A new
# command group is a new module and one line here.
COMMAND_MODULES: tuple[Callable[[Commands], None], ...] = (
    identity.register,
    drafts.register,
    redlines.register,
    negotiation.register,
    log.register,
    admin.register,
    witnesses.register,
    server.register,
    audit.register,
    demo.register,
    devices.register,
    desk.register,
)


def build_parser() -> Parser:
    """The ``docket`` argument parser."""
    parser = Parser(
        prog="docket",
        description="Docket: end-to-end encrypted, signed and logged drafts for mediated talks.",
        epilog="Exit codes: 0 ok, 1 verification failure or alarm, 2 usage error, "
        "3 network or server error, 4 local state or key store error, "
        "5 input over a size limit.",
    )
    global_options(parser, top=True)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = Parser(add_help=False)
    global_options(common, top=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands = Commands(sub, common)
    for register in COMMAND_MODULES:
        register(commands)
    return parser


def _version() -> str:
    """The installed ``docket`` distribution's version (``0+unknown`` from a bare tree)."""
    try:
        return metadata.version("docket")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _error_line(exc: BaseException) -> tuple[int, str, str]:
    """(exit code, code, message) for any exception."""
    if isinstance(exc, Alarm):
        return exc.exit_code, exc.name, f"{exc.message} -- {exc.explanation}"
    if isinstance(exc, ClientError):
        # Anything over a size limit, here or at the server, has its own exit code: it is
        # no verification failure, and retrying will not help.
        exit_code = EXIT_TOO_LARGE if exc.code == "too_large" else exc.exit_code
        return exit_code, exc.code, exc.message
    if isinstance(exc, ProtocolError):
        exit_code = EXIT_TOO_LARGE if exc.code == "too_large" else EXIT_VERIFY
        return exit_code, exc.code, f"{exc.code}: {exc.detail}"
    if isinstance(exc, OSError):
        return EXIT_STATE, "os_error", f"{exc.strerror or exc}"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_USAGE, "interrupted", "interrupted"
    return EXIT_VERIFY, "internal", f"internal error: {type(exc).__name__}: {exc}"


def _silence_stdout() -> None:
    """Point stdout at /dev/null (the reader of a pipe went away, as in ``| head``), so
    neither our output nor the interpreter's final flush fails."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (never raises, never prints a traceback)."""
    try:
        return _run(argv)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK


# Options whose values are base64url (ids, tokens, keys), which may begin with "-".
ID_OPTIONS = ("--talks", "--parent", "--draft", "--fingerprint", "--token", "--log-key")


def join_id_values(argv: Sequence[str], options: Iterable[str]) -> list[str]:
    """Write ``--talks -Xy...`` as ``--talks=-Xy...`` so that argparse does not take a
    base64url id beginning with ``-`` for an option.  A following token that is one of
    the parser's own ``options`` is left alone."""
    known = set(options)
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if item in ID_OPTIONS and nxt is not None and nxt.startswith("-") and nxt not in known:
            out.append(f"{item}={nxt}")
            i += 2
            continue
        if item == "history" and nxt is not None and nxt.startswith("-") and nxt not in known:
            out.extend([item, f"--draft={nxt}"])  # a draft id as the positional DRAFT
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:  # argparse offers no public walk over subparsers
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    raw = list(argv if argv is not None else sys.argv[1:])
    want_json = "--json" in raw
    ctx: Context | None = None
    try:
        args = parser.parse_args(join_id_values(raw, _option_strings(parser)))
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        daemon = getattr(args, "func", None)
        if daemon is not None:
            # ``docket witness init|serve``: the standalone witness daemon's own commands
            # (client.witnessd), with their own options, run outside any client home.
            return int(daemon(args))
        ctx = Context(args)
        handler: Handler = args.handler
        result: JSONValue = asyncio.run(handler(ctx, args))
        if ctx.json:
            print(json_safe(json.dumps(result, sort_keys=True, ensure_ascii=False)))
        else:
            print_lines(ctx.lines)
        ctx.lines.clear()
        sys.stdout.flush()
        if ctx.pending_error is not None:
            code, _, message = _error_line(ctx.pending_error)
            print(f"docket: {terminal_safe(' '.join(message.split()))}", file=sys.stderr)
            return code
        return EXIT_OK
    except SystemExit as exc:  # --help exits through argparse
        return int(exc.code) if isinstance(exc.code, int) else EXIT_OK
    except BrokenPipeError:
        raise
    except BaseException as exc:
        code, name, message = _error_line(exc)
        if ctx is not None and ctx.lines and not ctx.json:
            # Output gathered before the failure is still true; show it.
            print_lines(ctx.lines)
        one_line = terminal_safe(" ".join(message.split()))
        print(f"docket: {one_line}", file=sys.stderr)
        if want_json:
            print(json.dumps({"error": {"code": name, "exit": code, "message": one_line}}))
        return code


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point (``docket``)."""
    sys.exit(run(argv))
