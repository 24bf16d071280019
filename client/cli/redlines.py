"""Redlines: ``docket diff A B`` and the diffs of ``docket history --diff``.

Both versions are opened and verified as any draft is read (so a redline is only ever
of text this device verified).  Texts are compared word by word with
:func:`client.redline.words`; a version that carries a file is compared by the file's
SHA-256 and size, and by words as well when the file is text
(:func:`client.redline.is_text`).

On a terminal insertions are green and underlined, deletions red and struck through
(unless ``NO_COLOR`` is set); elsewhere the plain markers ``[-deleted-]`` and
``{+inserted+}`` are used.  The colour codes are added around text that has already been
made terminal-safe, so nothing another party wrote can drive the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys

from client import redline
from client.api import DocketClient, ReadDraft
from client.cli.context import Context, sync_or_warn
from client.cli.output import print_lines, terminal_safe
from client.cli.parsing import Commands, positive
from client.errors import UsageError
from protocol import crypto
from protocol.encoding import JSONValue, b64e
from protocol.envelope import Payload

_INS = "\x1b[32;4m"
_DEL = "\x1b[31;9m"
_OFF = "\x1b[0m"


def register(commands: Commands) -> None:
    """Add ``diff``."""
    p = commands.add("diff", cmd_diff, "a word-level redline of two versions of a draft")
    p.add_argument("a", type=positive, metavar="A", help="log index of the older version")
    p.add_argument("b", type=positive, metavar="B", help="log index of the newer version")


def compare(old: Payload, new: Payload) -> dict[str, JSONValue]:
    """The redline of two payloads: ``text`` (word ops, or None when either side has no
    text body), ``file`` (hash and size of each side's file, or None) and whether
    anything differs."""
    out: dict[str, JSONValue] = {"title": None, "text": None, "file": None}
    if old.title != new.title:
        out["title"] = {"old": old.title, "new": new.title}
    old_text, new_text = _text(old), _text(new)
    changed = old.title != new.title
    if old_text is not None and new_text is not None:
        try:
            ops = redline.words(old_text, new_text)
        except redline.TooLongError as exc:
            raise UsageError(str(exc)) from exc
        out["text"] = [op.to_json() for op in ops]
        changed = changed or redline.changed(ops)
    elif (old_text is None) != (new_text is None):
        changed = True
    if old.file_data is not None or new.file_data is not None:
        sides = {"old": _file_facts(old), "new": _file_facts(new)}
        out["file"] = sides
        changed = changed or sides["old"] != sides["new"]
    out["changed"] = changed
    return out


def _text(p: Payload) -> str | None:
    """The text a redline compares: the body, else a file that is text."""
    if p.body is not None:
        return p.body
    if p.file_data is not None and redline.is_text(p.file_data):
        return p.file_data.decode("utf-8")
    return None


def _file_facts(p: Payload) -> JSONValue:
    if p.file_data is None:
        return None
    return {
        "name": p.file_name,
        "sha256": crypto.sha256(p.file_data).hex(),
        "size": len(p.file_data),
        "text": redline.is_text(p.file_data),
    }


def colour_wanted(ctx: Context) -> bool:
    """Colour only on a terminal, never for ``--json`` or with ``NO_COLOR`` set."""
    return not ctx.json and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def render(diff: dict[str, JSONValue], *, colour: bool) -> list[str]:
    """Human lines for :func:`compare`'s result; with ``colour``, already terminal-safe
    and carrying ANSI codes (print them directly, not through ``ctx.say``)."""
    safe = terminal_safe if colour else (lambda s: s)
    lines: list[str] = []
    title = diff.get("title")
    if isinstance(title, dict):
        lines.append(f"Title: {safe(str(title['old']))} -> {safe(str(title['new']))}")
    file = diff.get("file")
    if isinstance(file, dict):
        for side in ("old", "new"):
            facts = file[side]
            if isinstance(facts, dict):
                lines.append(
                    f"File ({side}): {safe(str(facts['name']))}, {facts['size']} bytes, "
                    f"sha256 {facts['sha256']}" + ("" if facts["text"] else " (not text)")
                )
            else:
                lines.append(f"File ({side}): none")
    text = diff.get("text")
    if isinstance(text, list):
        out = []
        for op in text:
            assert isinstance(op, dict)
            kind, chunk = str(op["op"]), str(op["text"])
            if not colour:
                out.append(redline.plain([redline.Op(kind, chunk)]))  # type: ignore[arg-type]
            elif kind == "equal":
                out.append(safe(chunk))
            else:
                code = _INS if kind == "insert" else _DEL
                # Colour each line separately so a terminal never carries it over.
                out.append("\n".join(code + safe(part) + _OFF for part in chunk.split("\n")))
        lines.extend("".join(out).splitlines())
    elif isinstance(file, dict):
        lines.append("Not text: compared by hash and size only.")
    if not diff.get("changed"):
        lines.append("(no differences)")
    return lines


def emit(ctx: Context, lines: list[str], *, colour: bool) -> None:
    if colour:
        print_lines(ctx.lines)  # what was queued before comes first
        for line in lines:
            print(line)
    else:
        for line in lines:
            ctx.say(line)


async def open_pair(client: DocketClient, a: int, b: int) -> tuple[ReadDraft, ReadDraft]:
    return await client.read(a), await client.read(b)


async def cmd_diff(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket diff A B``."""
    async with ctx.client() as client:
        await sync_or_warn(ctx, client)
        old, new = await open_pair(client, args.a, args.b)
        if old.header.draft != new.header.draft:
            ctx.warn("the two versions belong to different drafts")
        diff = compare(old.payload, new.payload)
        colour = colour_wanted(ctx)
        head = (
            f"Redline of index {old.index} (v{old.header.version}) -> "
            f"{new.index} (v{new.header.version})"
        )
        emit(ctx, [head, *render(diff, colour=colour)], colour=colour)
        return {
            "a": old.index,
            "b": new.index,
            "draft_a": b64e(old.header.draft),
            "draft_b": b64e(new.header.draft),
            **diff,
        }
