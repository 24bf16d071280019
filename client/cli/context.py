"""Per-invocation settings and output, shared by every command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.table import Table

from client import keystore
from client.api import DocketClient
from client.cli.output import table_lines
from client.errors import ClientError, NetworkError
from protocol.encoding import JSONValue

Handler = Callable[["Context", argparse.Namespace], Coroutine[Any, Any, JSONValue]]


def default_home() -> Path:
    """``$DOCKET_HOME``, ``$XDG_DATA_HOME/docket`` or ``~/.local/share/docket``."""
    if os.environ.get("DOCKET_HOME"):
        return Path(os.environ["DOCKET_HOME"])
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "docket"


class Context:
    """Per-invocation settings and output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json: bool = args.json
        self.home: Path = Path(args.home) if args.home else default_home()
        self.server: str | None = args.server
        self.insecure: bool = bool(getattr(args, "insecure", False))
        self.lines: list[str] = []
        # An error to report after the output (e.g. rejected drafts in the inbox): the
        # command's result is still printed, then the exit code says something failed.
        self.pending_error: ClientError | None = None

    def client(self) -> DocketClient:
        """A client for the home, prompting for the passphrase only when needed."""
        client = DocketClient(self.home, server=self.server, passphrase=keystore.read_passphrase)
        client.core.insecure = self.insecure
        return client

    def say(self, line: str = "") -> None:
        """Queue a line of human output (printed unless ``--json``)."""
        self.lines.append(line)

    def say_table(self, table: Table, *, indent: int = 0) -> None:
        """Queue a table (see :func:`client.cli.output.table_lines`) as lines."""
        if table.row_count == 0:
            return
        self.lines.extend(table_lines(table, indent=indent))

    def warn(self, line: str) -> None:
        """A warning on stderr (both modes)."""
        print(f"docket: warning: {line}", file=sys.stderr)


async def sync_or_warn(ctx: Context, client: DocketClient) -> None:
    """Sync; when the server is unreachable, go on with the state verified so far."""
    try:
        await client.sync()
    except NetworkError as exc:
        size = client.log.size
        ctx.warn(f"{exc} - showing the log as verified up to size {size}")
