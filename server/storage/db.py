"""SQLite connections: one writer thread, a small pool of reader threads.

Why threads: sqlite3 calls block, and an ``fsync`` under ``synchronous=FULL`` takes
milliseconds; running them on the event loop would stall every connection.  All writes
go through one single-thread executor, so transactions never contend for SQLite's write
lock and their order is the order they were submitted in.  Readers use their own
connections (WAL lets them read a consistent snapshot while the writer commits).
"""

from __future__ import annotations

import asyncio
import errno
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import sqlite_utils

from server.storage.migrations import migrate

P = ParamSpec("P")
T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a connection in autocommit mode with the pragmas every connection needs.

    Autocommit (``isolation_level=None``) so that transactions are exactly the
    ``BEGIN``/``COMMIT`` pairs we issue, never ones the sqlite3 module opens implicitly.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        # WAL: readers keep a consistent snapshot while the single writer commits.
        sqlite_utils.Database(conn).enable_wal()
        # FULL: a commit is durable when COMMIT returns, which is what a promise needs.
        conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def run_txn(
    conn: sqlite3.Connection,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run ``fn(conn, ...)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args, **kwargs)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _run_read(
    conn: sqlite3.Connection,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    conn.execute("BEGIN")
    try:
        return fn(conn, *args, **kwargs)
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` means the disk (or the database's quota) is full."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return False


class Store:
    """The database of one server: a writer thread and ``readers`` reader threads."""

    def __init__(self, path: Path, *, readers: int = 2) -> None:
        self.path = path
        self._readers = readers
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docket-writer")
        self._reader_pool = ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix="docket-reader"
        )
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_conn: sqlite3.Connection | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Open the writer connection and apply pending migrations."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._open_writer)

    def _open_writer(self) -> None:
        conn = connect(self.path)
        migrate(conn)
        self._write_conn = conn

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    async def close(self) -> None:
        """Finish queued work, then close every connection and stop the threads."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._reader_pool.shutdown(wait=True)
        self._writer.submit(self._close_writer).result()
        self._writer.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def _close_writer(self) -> None:
        if self._write_conn is not None:
            # Fold the WAL back into the main file so a copied data directory is whole.
            try:
                self._write_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._write_conn.close()
            self._write_conn = None

    # -- running transactions ---------------------------------------------------------

    async def write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction on the writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: self._write(fn, *args, **kwargs))

    def _write(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if self._write_conn is None:
            raise sqlite3.ProgrammingError("store is not open")
        return run_txn(self._write_conn, fn, *args, **kwargs)

    async def read(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot) on a reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._reader_pool, lambda: _run_read(self._reader_conn(), fn, *args, **kwargs)
        )
