"""The parts of the ``docket`` parser that every command module uses.

Each command module has a ``register(commands)`` function that adds its subcommands,
their options and their handlers through :class:`Commands`; :mod:`client.cli.app` calls
them in the order ``docket --help`` lists the commands.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from client.cli.context import Context, Handler
from client.errors import UsageError
from protocol.encoding import JSONValue


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        """Raise a :class:`UsageError` (one line, exit 2) instead of printing usage."""
        raise UsageError(f"{message} (see '{self.prog} --help')")


def positive(text: str) -> int:
    """argparse type: a number that is not negative (log indexes, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--home``, ``--json``, ``--server`` and ``--insecure``."""
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--home",
        help="client home directory (default: $DOCKET_HOME, "
        "$XDG_DATA_HOME/docket or ~/.local/share/docket)",
        **unset,
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object for scripts", **unset
    )
    parser.add_argument(
        "--server", metavar="URL", help="server URL (stored by init and join)", **unset
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow cleartext http:// to a host that is not this machine",
        **unset,
    )


class Commands:
    """One level of subcommands (``docket COMMAND`` or ``docket GROUP ACTION``)."""

    def __init__(self, sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
        self._sub = sub
        # The global options are accepted after the subcommand too (``docket inbox
        # --json``); there they default to "not given", never overriding earlier ones.
        self._common = common

    @property
    def subparsers(self) -> argparse._SubParsersAction[Parser]:
        """The underlying argparse subparsers, for commands that bring their own parser
        (``docket witness init|serve``)."""
        return self._sub

    def add(
        self, name: str, handler: Handler, help_text: str, *, description: str | None = None
    ) -> Parser:
        """Add a subcommand with its handler, help text and (if not the help text)
        description."""
        p: Parser = self._sub.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            parents=[self._common],
        )
        p.set_defaults(handler=handler)
        return p

    def group(self, name: str, help_text: str) -> Commands:
        """Add ``docket NAME ACTION ...``; the actions are added to the result."""
        parent = self.add(name, _group_handler, help_text)
        sub = parent.add_subparsers(dest=f"{name}_command", metavar="ACTION", parser_class=Parser)
        return Commands(sub, self._common)


async def _group_handler(ctx: Context, args: argparse.Namespace) -> JSONValue:
    raise UsageError(f"'{args.command}' needs an action (see 'docket {args.command} --help')")
