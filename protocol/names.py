"""Text people read: display names, titles and file names.

Theory of operation
-------------------
Names (the talks title, the mediator's, delegations', members' and channels' display
names) are signed into the log and shown to every party.  Whatever a name contains is
what every client and report will show, so the rules sit here, at the protocol level,
and are applied by every parser (server, client and auditor alike):

1. **Characters.**  A name holds no character of the Unicode general categories Cc
   (C0 and C1 controls, so also NUL and the one-byte CSI U+009B), Cf (format: bidi
   overrides and isolates, zero-width spaces and joiners, soft hyphen...), Zl, Zp, Cs,
   Co or Cn (unassigned: its meaning could change with a Unicode version), and no
   default-ignorable code point (invisible fillers such as U+3164).  Such a character
   could make one name look like another, reorder the text around it, or drive a
   terminal.  :class:`~protocol.errors.BadNameError` (``bad_name``).
2. **One form.**  A name is in Unicode Normalization Form C, has no leading or trailing
   white space, is not empty and is at most :data:`NAME_MAX` code points: a name has one
   encoding, so equal names are equal bytes.  Clients normalise before signing
   (:func:`normalise_name`); parsers refuse anything else (``bad_name``).
3. **Distinct to the eye.**  Within one talks a new name must not have the same UTS #39
   confusable *skeleton* (:func:`skeleton`) as a name of the same kind already in the
   roster (member names, delegation names, channel names), so ``N\u043erth`` with a Cyrillic
   ``o`` (U+043E) cannot pass for ``North``.  :class:`~protocol.errors.ConfusableNameError`
   (``confusable_name``), checked by :class:`protocol.roster.Roster`.

The skeleton is ICU's (``SpoofChecker.getSkeleton``), the reference implementation of
UTS #39, from one pinned ICU build (the ``pyicu-wheels`` distribution, ICU 77.1,
Unicode 16.0): the skeleton table is part of the rules, and parties using different
tables could disagree about a logged change.

Titles and file names inside a draft's encrypted payload follow rule 1 only
(:func:`check_text`, :class:`~protocol.errors.UnsafeTextError`, ``unsafe_text``): they
are never compared, and a file name keeps whatever normalisation its file system gave it.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Collection, Iterable

import icu

from protocol.errors import BadNameError, ConfusableNameError, UnsafeTextError

NAME_MAX = 200
"""The longest display name or title, in code points."""

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
"""General categories no name, title or file name may contain."""

_IGNORABLE = icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT


def unsafe_characters(text: str) -> list[str]:
    """The characters of ``text`` that rule 1 forbids, in order (empty if none)."""
    return [
        c
        for c in text
        if unicodedata.category(c) in UNSAFE_CATEGORIES
        or icu.Char.hasBinaryProperty(ord(c), _IGNORABLE)
    ]


def describe(chars: Iterable[str]) -> str:
    """``U+202E, U+009B``: unsafe characters named by code point, never shown raw."""
    seen = dict.fromkeys(chars)
    return ", ".join(f"U+{ord(c):04X}" for c in seen)


def check_text(text: str, what: str) -> None:
    """Rule 1 for a title or file name: raise :class:`UnsafeTextError` or return."""
    bad = unsafe_characters(text)
    if bad:
        raise UnsafeTextError(
            f"{what} contains control, format or bidi characters ({describe(bad)})"
        )


def check_name(name: str, what: str, *, max_len: int = NAME_MAX) -> str:
    """Rules 1 and 2 for a display name: return it, or raise :class:`BadNameError`."""
    if not name or name != name.strip():
        raise BadNameError(f"{what} is empty or begins or ends with white space")
    if len(name) > max_len:
        raise BadNameError(f"{what} is longer than {max_len} characters")
    bad = unsafe_characters(name)
    if bad:
        raise BadNameError(
            f"{what} contains control, format, bidi or invisible characters ({describe(bad)})"
        )
    if not unicodedata.is_normalized("NFC", name):
        raise BadNameError(f"{what} is not in Unicode normalization form C")
    return name


def normalise_name(name: str) -> str:
    """What a client signs for a name a person typed: NFC, without outer white space.
    The result still goes through :func:`check_name` (normalising never removes a
    forbidden character)."""
    return unicodedata.normalize("NFC", name).strip(" ")


@functools.cache
def _checker() -> icu.SpoofChecker:
    return icu.SpoofChecker()


@functools.lru_cache(maxsize=8192)
def skeleton(name: str) -> str:
    """The UTS #39 confusable skeleton of ``name`` (ICU's ``getSkeleton``)."""
    return str(_checker().getSkeleton(0, name))


def check_distinct(name: str, skeletons: Collection[str], what: str) -> None:
    """Rule 3: raise :class:`ConfusableNameError` if ``name``'s skeleton is one of
    ``skeletons`` (those of the existing names; equal names have equal skeletons)."""
    if skeleton(name) in skeletons:
        raise ConfusableNameError(f"{what} looks the same as an existing one")
