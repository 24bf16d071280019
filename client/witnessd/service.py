"""The witness rules: check an ``add-checkpoint`` request, persist, then cosign.

Steps, in the order of c2sp.org/tlog-witness (each refusal is a :class:`WitnessRefusal`
carrying the spec's status):

1. the body parses (400, :mod:`client.witnessd.wire`) and holds a well-formed
   checkpoint note (400);
2. its origin is one this witness knows (404);
3. it carries a valid signature by that log's key, and no invalid one (403);
4. ``old`` is at most the checkpoint's size (400);
5. under the origin's lock, in one ``BEGIN IMMEDIATE`` transaction that re-reads the
   stored state: ``old`` equals the size last cosigned (409, with that size);
6. a size-0 checkpoint has the empty tree's root, an ``old`` of 0 comes with no proof,
   and :meth:`protocol.checkpoint.WitnessState.check_next` accepts the checkpoint
   (same size: same root; larger: the consistency proof verifies) (422; the refused,
   log-signed note is kept as evidence);
7. the cosignature (``cosignature/v1``, timestamp from the clock in seconds, never
   below the last one given for that origin) and the new state are committed, and only
   then returned.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from client.witnessd.home import WitnessedLog, WitnessHome
from client.witnessd.store import (
    Cosigned,
    add_refused_txn,
    connect,
    cosigned_txn,
    put_cosigned_txn,
)
from client.witnessd.wire import AddCheckpoint, WitnessRefusal, conflict, malformed
from protocol import crypto
from protocol.checkpoint import (
    Checkpoint,
    WitnessState,
    cosign,
    format_note,
    note_key_id,
    open_checkpoint,
    parse_note,
)
from protocol.errors import CheckpointError, ProtocolError
from protocol.merkle import EMPTY_ROOT

log = logging.getLogger("docket.witnessd")

Clock = Callable[[], int]
"""POSIX time in whole seconds (tlog-cosignature/v1 timestamps)."""

T = TypeVar("T")


def wall_clock() -> int:
    return int(time.time())


class WitnessService:
    """Cosigns checkpoints of the logs in ``home`` (see the module docstring)."""

    def __init__(self, home: WitnessHome, *, clock: Clock = wall_clock) -> None:
        self._home = home
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {item.origin: asyncio.Lock() for item in home.logs}
        # One thread owns the connection: every transaction runs there, one at a time.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="witnessd-db")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = await self._run(lambda: connect(self._home.db_path))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._run(conn.close)
        self._db.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn)

    async def add_checkpoint(self, body: bytes) -> str:
        """Check ``body`` and return our cosignature line(s); raises WitnessRefusal."""
        request = AddCheckpoint.from_bytes(body)  # 1. the framing
        cp, log_lines, witnessed = self._check_note(request)  # 1-3. the note
        if request.old > cp.size:  # 4.
            raise malformed(f"old size {request.old} is larger than the checkpoint's {cp.size}")
        async with self._locks[cp.origin]:  # 5-7., one request per origin at a time
            return await self._run(lambda: self._commit(request, cp, log_lines, witnessed))

    def _check_note(self, request: AddCheckpoint) -> tuple[Checkpoint, list[str], WitnessedLog]:
        try:
            note = parse_note(request.note)
            origin = Checkpoint.from_body(note.text).origin
        except CheckpointError as exc:
            raise malformed(f"not a checkpoint note: {exc.detail}") from None
        witnessed = self._home.log(origin)
        if witnessed is None:
            raise WitnessRefusal(404, "unknown log origin")
        try:
            cp, note = open_checkpoint(
                request.note,
                origin=origin,
                log_name=witnessed.log_name,
                log_key=witnessed.log_key,
            )
        except CheckpointError as exc:
            raise WitnessRefusal(403, exc.detail) from None
        kid = note_key_id(witnessed.log_name, witnessed.log_key)
        log_lines = [
            s.line()
            for s in note.signatures
            if s.name == witnessed.log_name and crypto.equal(s.key_id, kid)
        ]
        return cp, log_lines, witnessed

    def _commit(
        self,
        request: AddCheckpoint,
        cp: Checkpoint,
        log_lines: list[str],
        witnessed: WitnessedLog,
    ) -> str:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the witness state is closed")  # programming error
        conn.execute("BEGIN IMMEDIATE")
        try:
            line = self._check_and_sign_txn(conn, request, cp, log_lines, witnessed)
        except WitnessRefusal as refusal:
            if refusal.status == 422:
                log.warning("refused %s at size %d: %s", cp.origin, cp.size, refusal.detail)
                add_refused_txn(
                    conn,
                    cp.origin,
                    cp.size,
                    request.note,
                    reason=refusal.detail,
                    timestamp=self._clock(),
                )
                conn.execute("COMMIT")
            else:
                conn.execute("ROLLBACK")
            raise
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")  # durable (synchronous=FULL) before anyone sees the line
        return line

    def _check_and_sign_txn(
        self,
        conn: sqlite3.Connection,
        request: AddCheckpoint,
        cp: Checkpoint,
        log_lines: list[str],
        witnessed: WitnessedLog,
    ) -> str:
        stored = cosigned_txn(conn, cp.origin)
        # 5. old must be the size last cosigned (0 before the first).
        if request.old != (0 if stored is None else stored.size):
            raise conflict(0 if stored is None else stored.size)
        # 6. The spec's 422 cases, then the shared witness rule.
        if cp.size == 0 and not crypto.equal(cp.root, EMPTY_ROOT):
            raise WitnessRefusal(422, "a size-0 checkpoint must have the empty tree's root")
        if request.old == 0 and request.proof:
            raise WitnessRefusal(422, "no consistency proof is needed from size 0")
        state = (
            WitnessState.initial(cp.origin)
            if stored is None
            else WitnessState(origin=cp.origin, size=stored.size, root=stored.root)
        )
        try:
            state.check_next(cp, request.proof)
        except ProtocolError as exc:
            raise WitnessRefusal(422, exc.detail) from None
        # 7. Sign and store in the same transaction; the caller commits, then returns.
        timestamp = max(self._clock(), 1 if stored is None else stored.timestamp)
        line = cosign(cp, witnessed.name, self._home.key, timestamp=timestamp)
        note = format_note(cp.body(), [*log_lines[:1], line])
        put_cosigned_txn(
            conn,
            Cosigned(origin=cp.origin, size=cp.size, root=cp.root, note=note, timestamp=timestamp),
        )
        return line

    async def latest(self, origin: str) -> Cosigned | None:
        """The last checkpoint cosigned for ``origin`` (monitoring)."""

        def read() -> Cosigned | None:
            if self._conn is None:
                raise RuntimeError("the witness state is closed")  # programming error
            return cosigned_txn(self._conn, origin)

        return await self._run(read)
