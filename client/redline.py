"""Redlines: a word-level diff of two versions of a draft's text.

Negotiators compare wording, not lines: a treaty paragraph is one long line, and a
line diff would mark all of it changed for one altered word.  The text is split into
tokens that are either a run of word characters, a run of whitespace or a single other
character (punctuation), and :class:`difflib.SequenceMatcher` aligns the two token
sequences.  Joining the tokens of every ``equal`` and ``delete`` op gives back the old
text exactly, and of every ``equal`` and ``insert`` op the new text, which the tests
hold as a property.

``autojunk`` is off: its heuristic treats frequent tokens (spaces, "the") as junk in
texts over 200 tokens, which makes long drafts diff badly.  The matcher is quadratic
in the worst case, so :func:`words` refuses texts over :data:`MAX_TOKENS` tokens with
a clear error rather than stalling.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

OpKind = Literal["equal", "insert", "delete"]

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)
MAX_TOKENS = 200_000
"""Texts longer than this (in tokens) are not diffed word by word."""


class TooLongError(ValueError):
    """A text has more than :data:`MAX_TOKENS` tokens."""


@dataclass(frozen=True, slots=True)
class Op:
    """One run of the diff: ``text`` is kept, inserted (new only) or deleted (old only)."""

    kind: OpKind
    text: str

    def to_json(self) -> dict[str, str]:
        return {"op": self.kind, "text": self.text}


def tokens(text: str) -> list[str]:
    """Split ``text`` into word, whitespace and punctuation tokens (joined back, ``text``)."""
    return _TOKEN.findall(text)


def words(old: str, new: str) -> list[Op]:
    """The word-level diff from ``old`` to ``new``, as consecutive runs.

    Adjacent runs of the same kind are merged, and a replacement is given as its delete
    run before its insert run.
    """
    a, b = tokens(old), tokens(new)
    if len(a) > MAX_TOKENS or len(b) > MAX_TOKENS:
        raise TooLongError(f"text over {MAX_TOKENS} words is too long for a word-level diff")
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    ops: list[Op] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            _push(ops, "equal", "".join(a[i1:i2]))
            continue
        if tag in ("delete", "replace"):
            _push(ops, "delete", "".join(a[i1:i2]))
        if tag in ("insert", "replace"):
            _push(ops, "insert", "".join(b[j1:j2]))
    return ops


def _push(ops: list[Op], kind: OpKind, text: str) -> None:
    if not text:
        return
    if ops and ops[-1].kind == kind:
        ops[-1] = Op(kind, ops[-1].text + text)
    else:
        ops.append(Op(kind, text))


def old_text(ops: list[Op]) -> str:
    """The old text, rebuilt from a diff."""
    return "".join(op.text for op in ops if op.kind != "insert")


def new_text(ops: list[Op]) -> str:
    """The new text, rebuilt from a diff."""
    return "".join(op.text for op in ops if op.kind != "delete")


def changed(ops: list[Op]) -> bool:
    """Whether the diff has any insertion or deletion."""
    return any(op.kind != "equal" for op in ops)


def plain(ops: list[Op]) -> str:
    """The diff with plain markers, for a terminal without colour or a file:
    ``[-deleted-]`` and ``{+inserted+}`` (the markers of ``git diff --word-diff``)."""
    out = []
    for op in ops:
        if op.kind == "delete":
            out.append("[-" + op.text + "-]")
        elif op.kind == "insert":
            out.append("{+" + op.text + "+}")
        else:
            out.append(op.text)
    return "".join(out)


def is_text(data: bytes) -> bool:
    """Whether ``data`` is text a redline can show: valid UTF-8 with no NUL and no
    control characters other than tab, line feed, carriage return and form feed."""
    if b"\x00" in data:
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 32 and c not in "\t\n\r\f" for c in text)
