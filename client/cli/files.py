"""Saving what other parties sent: safe file names, and files that never overwrite."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from client.errors import StateError
from protocol.names import unsafe_characters

# Path separators, and every character Windows refuses in a name (files travel).
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:<>"|?*]')

# Device names Windows reserves in every folder, with or without an extension, in any
# case, and with the superscript digits it also accepts (COM¹ ...).
_RESERVED = re.compile(
    r"(?:CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(?:COM|LPT)[0-9\u00b9\u00b2\u00b3])", re.IGNORECASE
)


def safe_file_name(name: str | None) -> str:
    """A file name that is safe to create in a directory of our choosing.

    The name comes from another party: NFC-normalise it; replace path separators,
    characters Windows refuses, and every control, format, bidi or invisible character
    (C0 and C1 controls such as the one-byte CSI U+009B, U+202E RIGHT-TO-LEFT OVERRIDE,
    zero-width spaces; see :func:`protocol.names.unsafe_characters`) with ``_``; strip
    leading dots (no hidden files, no ``..``) and the trailing dots and spaces Windows
    drops; rename Windows device names (``CON``, ``NUL.txt``, ``com1``...) by prefixing
    ``_``; bound the length; and fall back to ``attachment`` when nothing is left.
    """
    cleaned = unicodedata.normalize("NFC", name or "")
    cleaned = "".join("_" if unsafe_characters(c) else c for c in cleaned)
    cleaned = _UNSAFE_NAME.sub("_", cleaned)
    cleaned = cleaned.strip().lstrip(".").strip().rstrip(". ")
    encoded = cleaned.encode("utf-8")[:200]
    cleaned = encoded.decode("utf-8", errors="ignore").rstrip(". ")
    if _RESERVED.fullmatch(cleaned.split(".", 1)[0].rstrip(" ")):
        cleaned = f"_{cleaned}"
    return cleaned or "attachment"


def save_new_file(directory: Path, name: str, data: bytes) -> Path:
    """Create ``directory/name`` (or ``name (n)``) without ever overwriting a file."""
    directory.mkdir(parents=True, exist_ok=True)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for n in range(1000):
        candidate = name if n == 0 else (f"{stem} ({n}).{ext}" if ext else f"{stem} ({n})")
        path = directory / candidate
        try:
            # O_EXCL: fail rather than follow or replace whatever is there, even a symlink.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return path
    raise StateError(f"cannot find a free file name for {name!r} in {directory}")
