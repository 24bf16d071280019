"""Rollback protection: what this log published, remembered outside its data directory.

Theory of operation
-------------------
A data directory restored from an older backup (or a database copied without its WAL)
carries an older ``checkpoint.txt`` with it, so the start-up self-check alone
(:mod:`server.services.recovery`) cannot tell that the log once was longer.  Serving
it writable would promise new entries at indices already promised to others and sign
checkpoints that fork from what clients and witnesses hold.  So the server learns what
it published from two places the backup does not travel back in time with:

1. **The high-water mark** (``--high-water FILE`` / ``high_water``), a file the operator
   keeps outside the data directory (another disk, a mounted share).  Every checkpoint
   is written to it, atomically and fsynced, *before* it is stored in the database, so
   no client or witness can have seen a checkpoint the mark does not cover.  It holds
   the signed note itself: a mark is trusted only if the log key signed it.
2. **The witnesses** (:mod:`server.services.witnessing`): each is asked for the size
   it last cosigned; a larger size than the store's is the same finding.

If either says the log was larger than the store, or its root at its size differs from
the stored tree, the server stays read-only (problem code ``store_behind`` or
``store_diverged``), says so in the log and in ``/healthz``, and names the two ways
out: bring back the missing entries (``docket-server restore`` a newer backup into a
fresh data directory and serve that) or retire the log under a new origin
(``docket-server retire``).  It never repairs anything on its own.

A missing mark file is created from the store's latest checkpoint (the first start
with ``--high-water``); a mark for another origin is a configuration error (each log
needs its own file).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from protocol import merkle
from protocol.checkpoint import open_checkpoint
from protocol.encoding import b64d, b64e, canonical, parse
from protocol.errors import ProtocolError
from server.services.checkpoints import write_file_atomically
from server.settings import ConfigError
from server.storage.db import Store
from server.storage.log import CheckpointRow, SqliteNodes

log = logging.getLogger("docket.highwater")

FORMAT = "docket-high-water"
MAX_FILE = 64 * 1024
CODE_BEHIND = "store_behind"
CODE_DIVERGED = "store_diverged"

REMEDY = (
    "bring back the missing entries (docket-server restore a newer backup into a new data "
    "directory and serve that one) or retire this log under a new origin (docket-server "
    "retire --data DIR --new-origin NAME); see docs/OPERATIONS.md"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollback:
    """Why the store cannot be the log that was published: a problem code and a line."""

    code: str
    reason: str


def behind(what: str, published: int, stored: int) -> Rollback:
    """The store holds fewer entries than ``what`` says were published."""
    return Rollback(
        code=CODE_BEHIND,
        reason=(
            f"{what} has published a tree of {published} entries but the store holds only "
            f"{stored}: restored from an older backup? {REMEDY}"
        ),
    )


def naive_copy_suspected(db: Path) -> bool:
    """Whether ``db`` looks like a running server's database copied without its WAL: its
    header says WAL mode (file format bytes 18-19 are 2) but no ``-wal`` file is beside
    it.  (A backup's copy is in rollback-journal mode; a stopped server's may look the
    same, which is why this only ever adds a hint to a store found behind.)"""
    if db.with_name(db.name + "-wal").exists():
        return False
    try:
        with db.open("rb") as fh:
            header = fh.read(100)
    except OSError:
        return False
    return len(header) == 100 and header[18:20] == b"\x02\x02"


def with_wal_hint(problem: Rollback, db: Path) -> Rollback:
    """``problem``, naming the likely cause when the store is behind and its database had
    no ``-wal`` file when the server started: a copy of a running server's
    ``docket.db`` alone, which lacks every commit still in the WAL."""
    if problem.code != CODE_BEHIND:
        return problem
    return Rollback(
        code=problem.code,
        reason=(
            f"{db.name} had no -wal file beside it: if it was copied from a running server "
            "without its WAL (a naive copy), the newest commits are missing; make copies "
            f"with docket-server backup. {problem.reason}"
        ),
    )


def diverged(what: str, size: int) -> Rollback:
    """The store's tree at ``size`` is not the one ``what`` says was published."""
    return Rollback(
        code=CODE_DIVERGED,
        reason=(
            f"{what} at size {size} has another root than the stored tree: the store was "
            f"rewritten or restored from another copy; {REMEDY}"
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """A high-water mark: the largest checkpoint this log ever signed."""

    origin: str
    size: int
    root: bytes
    note: bytes

    def to_bytes(self) -> bytes:
        """The file's content: one canonical JSON object and a newline."""
        return (
            canonical(
                {
                    "note": self.note.decode("utf-8"),
                    "origin": self.origin,
                    "root": b64e(self.root),
                    "size": self.size,
                    "t": FORMAT,
                    "v": 1,
                }
            )
            + b"\n"
        )


def read_mark(path: Path, *, origin: str, log_public: bytes) -> Mark | None:
    """The mark in ``path`` (``None`` if there is no file), verified under the log key.

    Raises :class:`ConfigError` for a file that is unreadable, malformed, for another
    log, or not signed by this log's key.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the high-water file {path}: {exc.strerror}") from None
    try:
        if len(raw) > MAX_FILE or not raw.endswith(b"\n"):
            raise ProtocolError("not a high-water file")
        doc = parse(raw[:-1])
        if not isinstance(doc, dict) or doc.get("t") != FORMAT or doc.get("v") != 1:
            raise ProtocolError("not a high-water file")
        note = doc["note"]
        if not isinstance(note, str):
            raise ProtocolError("malformed")
        mark_origin = _str(doc["origin"])
        if mark_origin != origin:
            raise ConfigError(
                f"the high-water file {path} is for the log {mark_origin!r}, not {origin!r}: "
                "give each log its own high-water file"
            )
        cp, _ = open_checkpoint(
            note.encode("utf-8"), origin=origin, log_name=origin, log_key=log_public
        )
        root = b64d(doc["root"], length=32, what="root")
        if cp.size != doc["size"] or cp.root != root:
            raise ProtocolError("its size or root is not the signed checkpoint's")
    except ProtocolError as exc:
        raise ConfigError(
            f"the high-water file {path} is not valid ({exc.detail}): it must hold a "
            "checkpoint signed by this log's key"
        ) from None
    except (KeyError, UnicodeDecodeError):
        raise ConfigError(f"the high-water file {path} is not valid") from None
    return Mark(origin=origin, size=cp.size, root=cp.root, note=note.encode("utf-8"))


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ProtocolError("malformed")
    return value


def _root_txn(conn: sqlite3.Connection, size: int) -> bytes:
    return merkle.root(size, SqliteNodes(conn))


class HighWater:
    """The high-water file of one log: checked at start-up, advanced before every
    checkpoint is stored (module docstring)."""

    def __init__(self, path: Path, *, origin: str, log_public: bytes) -> None:
        self.path = path
        self._origin = origin
        self._log_public = log_public
        self._size = -1

    def check_path(self, data: Path) -> None:
        """Refuse a high-water file inside the data directory: it would travel back in
        time with a restored copy and protect nothing."""
        try:
            inside = self.path.resolve().is_relative_to(data.resolve())
        except OSError:
            inside = False
        if inside:
            raise ConfigError(
                f"the high-water file {self.path} is inside the data directory {data}: "
                "keep it elsewhere (another disk or host), or a restored copy brings its "
                "old mark back with it"
            )

    async def check(
        self, store: Store, *, size: int, latest: CheckpointRow | None
    ) -> Rollback | None:
        """Compare the mark with the store of ``size`` entries (before any write)."""
        mark = await asyncio.to_thread(
            read_mark, self.path, origin=self._origin, log_public=self._log_public
        )
        if mark is None:
            if latest is not None:
                await self.record(latest)
                log.info("high-water file %s created at size %d", self.path, latest.size)
            return None
        self._size = mark.size
        # The reason goes to /healthz too, which anyone may read: the path only to the log.
        problem: Rollback | None = None
        if mark.size > size:
            problem = behind("the high-water file", mark.size, size)
        elif mark.size > 0:
            try:
                root = await store.read(_root_txn, mark.size)
            except LookupError:
                problem = behind("the high-water file", mark.size, size)
            else:
                if root != mark.root:
                    problem = diverged("the high-water file", mark.size)
        if problem is not None:
            log.error("the high-water file %s is ahead of the store or differs", self.path)
        return problem

    async def record(self, row: CheckpointRow) -> None:
        """Advance the mark to ``row`` (durably) if it is larger than the mark."""
        if row.size <= self._size:
            return
        mark = Mark(origin=self._origin, size=row.size, root=row.root, note=row.note)
        await asyncio.to_thread(self._write, mark.to_bytes())
        self._size = row.size

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(self.path, data)


HIGH_WATER = web.AppKey("high_water", HighWater)
"""The app's high-water mark, present when the ``high_water`` setting is given."""

NAIVE_COPY = web.AppKey("naive_copy", bool)
"""Whether the database looked like a copy without its WAL before anything opened it."""
