"""The storage figures behind ``/metrics``: file sizes and cosignature ages.

Read at every scrape, off the event loop: the database and WAL sizes are two
``stat`` calls; the blob figures are one directory scan of ``blobs/`` (one ``stat`` per
large ciphertext; small ones live in the database and count in its size); the
cosignature ages are one indexed query over the ``cosignatures`` table and the
timestamps the witnesses signed (``protocol.quorum.cosignature_time``), so the age is
the witness's own word, the one the quorum freshness rule checks.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from protocol.checkpoint import NoteSignature
from protocol.errors import ProtocolError
from protocol.quorum import cosignature_time
from server.clock import Clock
from server.services.metrics import StorageStats
from server.storage.db import Store
from server.storage.stats import latest_cosignature_lines_txn

WAL_SUFFIX = "-wal"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _file_figures(db_path: Path, blob_dir: Path) -> tuple[int, int, int, int]:
    database = _size(db_path)
    wal = _size(db_path.with_name(db_path.name + WAL_SUFFIX))
    blob_bytes = blob_files = 0
    try:
        with os.scandir(blob_dir) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    blob_bytes += entry.stat(follow_symlinks=False).st_size
                    blob_files += 1
    except FileNotFoundError:
        pass
    return database, wal, blob_bytes, blob_files


class StorageProbe:
    """Reads :class:`StorageStats` for one data directory (``Metrics.storage``)."""

    def __init__(self, *, db_path: Path, blob_dir: Path, store: Store, clock: Clock) -> None:
        self._db_path = db_path
        self._blob_dir = blob_dir
        self._store = store
        self._clock = clock

    async def __call__(self) -> StorageStats:
        """The figures now."""
        database, wal, blob_bytes, blob_files = await asyncio.to_thread(
            _file_figures, self._db_path, self._blob_dir
        )
        lines = await self._store.read(latest_cosignature_lines_txn)
        now = self._clock() / 1000
        ages: dict[str, float] = {}
        for name, line in lines.items():
            try:
                ages[name] = max(0.0, now - cosignature_time(NoteSignature.from_line(line)))
            except ProtocolError:
                continue  # stored lines were verified; a foreign one is simply not shown
        return StorageStats(
            database_bytes=database,
            wal_bytes=wal,
            blob_bytes=blob_bytes,
            blob_files=blob_files,
            cosignature_ages=ages,
        )
