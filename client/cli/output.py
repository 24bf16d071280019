"""Human output: short forms of times and ids, ``terminal_safe``, aligned tables and the
audit progress bar.

Everything other parties wrote (names, titles, file names, bodies) reaches the terminal
only through :func:`terminal_safe`.  Tables and the progress bar are laid out by
``rich``, which measures text in terminal cells (wide scripts, combining marks) where
``str.ljust`` counts code points.  Table cells are always :class:`rich.text.Text`, never
markup: a title such as ``[bold]x`` or ``[link=...]`` is shown as written.  Tables are
rendered to plain lines (no colour, no borders, whatever the terminal or the
environment says) and printed like every other line, so the output is the same on a
terminal and in a pipe.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Column, Table
from rich.text import Text

from protocol.encoding import b64e
from protocol.names import unsafe_characters

if TYPE_CHECKING:
    from client.cli.context import Context

# Wide enough that no cell is ever wrapped: a table is as wide as its content.
_NO_WRAP_WIDTH = 1 << 20
_BAR_WIDTH = 30


def fmt_time(ms: int | None) -> str:
    """Milliseconds since the epoch as a short UTC timestamp."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def short(data: bytes) -> str:
    """The first 11 base64url characters of an id or hash (for people, not scripts)."""
    return b64e(data)[:11]


def _unsafe(c: str) -> bool:
    """A character that must not reach a terminal or a JSON consumer raw: anything not
    printable, and every control, format, bidi or invisible character
    (:func:`protocol.names.unsafe_characters`: Cc including C1, Cf, Zl, Zp, ...)."""
    return not c.isprintable() or bool(unsafe_characters(c))


def terminal_safe(text: str) -> str:
    """``text`` with every non-printable character shown as ``?``.

    Titles, names, file names and bodies come from other parties; control characters
    (C0 and C1, so also CSI) could drive the terminal, and bidi overrides could make one
    text look like another.  Human output passes through here.
    """
    return "".join("?" if c != "\t" and _unsafe(c) else c for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes a character beyond the BMP as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(text: str) -> str:
    """JSON text (as ``json.dumps(..., ensure_ascii=False)`` writes it) with every unsafe
    character written as a ``\\uXXXX`` escape instead of raw.

    Outside strings JSON text is ASCII, so each such character is inside a string, where
    the escape means the same character: a parser reads the same value, and a terminal
    showing the output sees no control, CSI or bidi override.
    """
    return "".join(_escape(c) if c != "\t" and _unsafe(c) else c for c in text)


def print_lines(lines: list[str]) -> None:
    """Print queued human output (each line made terminal-safe), then forget it."""
    for line in lines:
        print(terminal_safe(line))
    lines.clear()


# --- tables ------------------------------------------------------------------------------


def right(min_width: int = 0) -> Column:
    """A right-aligned column (log indexes), at least ``min_width`` cells wide."""
    return Column(justify="right", min_width=min_width or None)


def new_table(*columns: Column | str) -> Table:
    """A table without borders or headers; two spaces between columns."""
    return Table(
        *columns,
        box=None,
        show_header=False,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
    )


def add_row(table: Table, *cells: str) -> None:
    """Add a row of plain text: terminal-safe, and never read as rich markup."""
    table.add_row(*(Text(terminal_safe(cell), no_wrap=True) for cell in cells))


def table_lines(table: Table, *, indent: int = 0) -> list[str]:
    """``table`` as plain lines without trailing spaces, each indented by ``indent``."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=_NO_WRAP_WIDTH,
        color_system=None,
        force_terminal=False,
        force_interactive=False,
        force_jupyter=False,
        no_color=True,
        markup=False,
        emoji=False,
        highlight=False,
        legacy_windows=False,
    )
    console.print(table)
    return [" " * indent + line.rstrip() for line in buffer.getvalue().splitlines()]


# --- progress ----------------------------------------------------------------------------


def _progress_bar(ctx: Context) -> Callable[[int, int], None] | None:
    """A one-line progress bar on stderr, only when stderr is a terminal (never with
    ``--json`` or in a pipe).

    The line is redrawn in place with a carriage return rather than through a
    :class:`rich.live.Live` display: that would hide the cursor and take over stdout and
    stderr until stopped, and an audit can end early with an error line to print.
    """
    if ctx.json or not sys.stderr.isatty():
        return None
    err = sys.stderr
    console = Console(file=err, highlight=False, markup=False, emoji=False)

    def show(done: int, total: int) -> None:
        err.write("\r")
        if total:
            bar = ProgressBar(total=total, completed=min(done, total), width=_BAR_WIDTH)
            console.print("audit ", bar, f" {done}/{total} entries", sep="", end="")
        else:
            console.print(f"audit {done} entries", end="")
        if total and done >= total:
            err.write("\n")
        err.flush()

    return show
