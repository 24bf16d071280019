"""The checkpointer: signs a C2SP checkpoint of the committed tree when it grows.

A checkpoint is signed at most once per ``interval`` and at the latest ``interval``
after the tree grew.  It is stored in the database and written atomically to
``DATA/checkpoint.txt`` (temporary file, fsync, rename, fsync of the directory), the
copy the start-up self-check compares the store against.  Only committed (durable)
entries are ever covered, and nothing is signed while the server is read-only.

Checkpoint times never decrease: a clock reading before the latest checkpoint's time
(the system clock set back) is clamped to that time and logged as an anomaly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from protocol.checkpoint import Checkpoint, format_note, sign_checkpoint
from server.clock import Clock, SteadyClock
from server.faults import crash_point
from server.services.blobs import fsync_dir
from server.services.metrics import Metrics
from server.services.state import LogState
from server.storage.db import Store
from server.storage.log import CheckpointRow, insert_checkpoint_txn

log = logging.getLogger("docket.checkpoints")


def write_file_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # os.write may write less than asked (a nearly full disk): loop until all of it
        # is written or a write fails, never publish a truncated file.
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Checkpointer:
    """Signs, stores and publishes checkpoints (see the module docstring)."""

    def __init__(
        self,
        *,
        state: LogState,
        store: Store,
        metrics: Metrics,
        clock: Clock,
        interval: float,
        path: Path,
    ) -> None:
        self._state = state
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._interval = interval
        self._path = path
        self._event = asyncio.Event()
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_signed = float("-inf")
        self._unpublished: CheckpointRow | None = None
        self.latest: CheckpointRow | None = None
        self.clamped = 0
        """How many checkpoint times were clamped to the latest (a clock set back)."""
        self.on_publish: list[Callable[[CheckpointRow], None]] = []
        """Called with every checkpoint once it is stored and published (witnessing)."""
        self.before_store: list[Callable[[CheckpointRow], Awaitable[None]]] = []
        """Awaited with every signed checkpoint before it is stored: the high-water mark
        (server/highwater.py) is durable before anyone can see the checkpoint."""

    def start(self, latest: CheckpointRow | None) -> None:
        """Begin after start-up with the latest stored checkpoint."""
        self.latest = latest
        if latest is not None and isinstance(self._clock, SteadyClock):
            self._clock.advance(latest.time)
        self._task = asyncio.create_task(self._run(), name="docket-checkpointer")
        self.poke()

    def poke(self) -> None:
        """The committed tree may have grown."""
        self._event.set()

    async def close(self) -> None:
        """Stop the loop, then sign a last checkpoint over everything committed."""
        # Not cancelled: a cancellation between storing a checkpoint and noting it
        # would make the final signing below try to store the same size again.
        self._closing = True
        self._stop.set()
        self._event.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self.sign_now()
        except Exception:
            log.exception("could not sign the final checkpoint")

    async def _run(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            if self._closing:
                return
            if not self._grown():
                continue
            if await self._stopped_within(self._last_signed + self._interval - time.monotonic()):
                return
            try:
                await self.sign_now()
            except Exception:
                # Retry after an interval; the log itself is unaffected.
                log.exception("could not sign a checkpoint")
                if await self._stopped_within(self._interval):
                    return
                self._event.set()

    async def _stopped_within(self, delay: float) -> bool:
        """Sleep ``delay`` seconds unless closed first; whether we are closing."""
        if delay > 0:
            try:
                async with asyncio.timeout(delay):
                    await self._stop.wait()
            except TimeoutError:
                pass
        return self._closing

    def _grown(self) -> bool:
        size = self._state.committed_size
        return size > 0 and (self.latest is None or size > self.latest.size)

    async def sign_now(self) -> CheckpointRow | None:
        """Sign, store and publish a checkpoint of the committed tree if it grew."""
        async with self._lock:
            if self._unpublished is not None:
                # Stored, but writing checkpoint.txt failed (a full disk): publish it
                # first; signing the same size again would collide with the stored row.
                await self._publish(self._unpublished)
            self._state.check_key()  # a removed or changed key: read-only, nothing signed
            if self._state.read_only is not None or not self._grown():
                return None
            # Size and root are updated together by the sequencer after each commit.
            size, root = self._state.committed_size, self._state.committed_root
            cp = Checkpoint(origin=self._state.origin, size=size, root=root)
            line = sign_checkpoint(cp, self._state.origin, self._state.log_key)
            row = CheckpointRow(
                size=size, root=root, note=format_note(cp.body(), [line]), time=self._time()
            )
            crash_point("checkpoint.signed")
            for hook in self.before_store:
                await hook(row)
            await self._store.write(insert_checkpoint_txn, row)
            self._unpublished = row
            crash_point("checkpoint.stored")
            await self._publish(row)
            self._last_signed = time.monotonic()
            self._metrics.checkpoints += 1
            return row

    def _time(self) -> int:
        """The new checkpoint's time: never before the latest one's (clamped, logged)."""
        now = self._clock()
        latest = self.latest
        if latest is not None and now < latest.time:
            self.clamped += 1
            log.warning(
                "clock anomaly: checkpoint time %d is %d ms before the latest (%d); "
                "clamped to the latest",
                now,
                latest.time - now,
                latest.time,
            )
            return latest.time
        return now

    async def _publish(self, row: CheckpointRow) -> None:
        """Write a stored checkpoint to ``checkpoint.txt``; then it is the latest."""
        await asyncio.get_running_loop().run_in_executor(
            None, write_file_atomically, self._path, row.note
        )
        self._unpublished = None
        self.latest = row
        for callback in self.on_publish:
            callback(row)
