"""``docket-server export``: write the raw log for offline audit, without judging it.

The export is what the store holds, exactly: every entry's bytes and every stored
checkpoint with the cosignatures collected for it.  It deliberately does not verify
anything (the store may be damaged or tampered with, and the point of the export is to
let an auditor see that with ``docket audit --log FILE``).

Format: JSON lines, each canonical JSON.

1. ``{"origin": <log origin>, "t": "docket-log", "v": 1}``
2. ``{"entry": <entry object>, "index": n}`` for every stored entry, in index order
3. ``{"checkpoint": <C2SP note text, log signature then cosignature lines>}`` for every
   stored checkpoint that has cosignatures, and for the latest one
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from protocol.encoding import canonical, parse
from protocol.errors import ProtocolError
from server.storage.auth import get_meta_txn
from server.storage.db import connect
from server.storage.log import (
    checkpoint_with_cosignatures_txn,
    cosigned_sizes_txn,
    each_entry_txn,
    latest_checkpoint_txn,
)


def export_log(db_path: Path, write: Callable[[bytes], object]) -> tuple[int, int]:
    """Write the export to ``write`` (one call per line); return (entries, checkpoints).

    Reads one consistent snapshot through a read-only connection, so it may run while
    the server is serving.
    """
    conn = connect(db_path, readonly=True)
    try:
        conn.execute("BEGIN")
        raw_origin = get_meta_txn(conn, "origin")
        origin = raw_origin.decode("utf-8", errors="replace") if raw_origin else ""
        write(canonical({"origin": origin, "t": "docket-log", "v": 1}) + b"\n")

        def visit(index: int, kind: str, leaf: bytes, body: bytes) -> None:
            try:
                entry = parse(body)
            except ProtocolError:
                # Not canonical JSON any more: export it as a string so the auditor
                # still sees (and reports) the damaged entry at its index.
                entry = body.decode("utf-8", errors="replace")
            write(canonical({"entry": entry, "index": index}) + b"\n")

        entries = each_entry_txn(conn, visit)
        sizes = set(cosigned_sizes_txn(conn))
        latest = latest_checkpoint_txn(conn)
        if latest is not None:
            sizes.add(latest.size)
        for size in sorted(sizes):
            found = checkpoint_with_cosignatures_txn(conn, size)
            if found is None:
                continue
            row, lines = found
            note = row.note.decode("utf-8", errors="replace") + "".join(lines)
            write(canonical({"checkpoint": note}) + b"\n")
        conn.execute("COMMIT")
        return entries, len(sizes)
    finally:
        conn.close()
