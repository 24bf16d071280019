"""The one entry point of the committed-vector generators: write the file, or with
``--check`` report whether the committed file is what the generator makes now."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(output: Path, text: str, module: str, argv: list[str]) -> int:
    """Write ``text`` to ``output``; with ``--check`` only compare (exit 1 if stale)."""
    if "--check" in argv:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != text:
            print(f"{output} is stale; run python -m {module}", file=sys.stderr)
            return 1
        return 0
    output.write_text(text, encoding="utf-8")
    return 0
