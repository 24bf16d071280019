"""Saving what other parties sent: safe file names, and files that never overwrite."""

from __future__ import annotations

import os
import re
from pathlib import Path

from client.errors import StateError

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:]")


def safe_file_name(name: str | None) -> str:
    """A file name that is safe to create in a directory of our choosing.

    The name comes from another party: strip path separators, control characters and
    leading dots (no hidden files, no ``..``), bound its length, and fall back to
    ``attachment`` when nothing is left.
    """
    cleaned = _UNSAFE_NAME.sub("_", name or "")
    cleaned = cleaned.strip().lstrip(".").strip()
    encoded = cleaned.encode("utf-8")[:200]
    cleaned = encoded.decode("utf-8", errors="ignore")
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
