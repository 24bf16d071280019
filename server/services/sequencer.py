"""The sequencer: the one writer of the log, with group commit.

Theory of operation
-------------------
Handlers parse and pre-check what they can cheaply, then :meth:`Sequencer.submit` an
item (one entry, or a group of receipts that must be logged together or not at all)
and await its promises.  One task owns the log:

1. It takes queued items in arrival order.  For each it runs the pure
   :class:`~protocol.ledger.Ledger` on the in-memory state (``apply_entry`` checks
   everything and changes nothing if it raises); a rejected item's submitter gets the
   :class:`ProtocolError` at once.  An accepted entry gets the next index, its leaf goes
   into the Merkle :class:`~protocol.merkle.Frontier` (which reports the perfect-subtree
   nodes it completed) and a promise is signed.
2. Everything queued while the previous commit ran forms the next batch (at most
   ``batch_max`` entries).  The batch — entries, nodes and every side row — is written
   in ONE ``BEGIN IMMEDIATE`` transaction on the writer thread under
   ``synchronous=FULL``.
3. Only after COMMIT returns are the promises handed out, waiters notified and the
   checkpointer poked.  If the commit fails, nobody gets a promise: the in-memory
   ledger and frontier are rebuilt from the database, and if that fails too the server
   goes read-only.

Receipt groups are all-or-nothing: every receipt is checked against the ledger before
any is applied.  Receipts for different drafts do not affect each other's checks, and
the receipts service allows one receipt per draft in a group, so once all checks pass
all applications succeed.

Each signature is verified once: the check pass verifies a receipt, so it is then
applied with the roster's key as ``verified_key``; a draft whose signature the relay's
dry run already verified arrives with that key (the ledger skips its own Ed25519 check
only if the key is exactly the roster's key for the signer at that point of the log).
After a commit, the notifier gets every notice of the batch (with the inline object of
small drafts) for the WebSocket feeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from protocol.envelope import DraftHeader
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.ledger import Act, Entry, Ledger, entry_kind
from protocol.merkle import LeafHash
from protocol.negotiation import check_tree_claim
from protocol.receipt import Promise, Receipt, make_promise
from protocol.roster import RosterChange
from server.clock import Clock
from server.errors import (
    AlreadyFoundedError,
    InsufficientStorageError,
    UnavailableError,
)
from server.faults import crash_point
from server.services.metrics import Metrics
from server.services.notifier import Notice, Notifier
from server.services.recovery import recover_txn
from server.services.state import LogState
from server.storage.db import Store, is_disk_full
from server.storage.log import BROADCAST, AppendRecord, DraftRow, ReceiptRow, append_batch_txn

__all__ = ["Sequencer", "append_batch_txn", "recover_txn"]

log = logging.getLogger("docket.sequencer")

ENROLLING_OPS = (
    "delegation.create",
    "member.enrol",
    "staff.enrol",
    # A device invitation (docs/PROTOCOL.md section 5a) is used once its keys are
    # enrolled or proposed.
    "device.add",
    "device.propose",
    "device.rotate",
)


class _Poisoned(Exception):
    """The in-memory state may be half-changed: the batch must be abandoned."""


@dataclass(eq=False, slots=True)
class _Item:
    entries: tuple[Entry, ...]
    future: asyncio.Future[list[Promise]]
    draft_keys: bytes | None = None
    ciphertext: bytes | None = None
    group: bool = False
    verified_key: bytes | None = None
    inline: bytes | None = None


@dataclass(slots=True)
class _Batch:
    items: list[tuple[_Item, list[Promise]]] = field(default_factory=list)
    records: list[AppendRecord] = field(default_factory=list)
    devices: set[bytes] = field(default_factory=set)
    notices: list[Notice] = field(default_factory=list)
    everyone: bool = False
    poisoned: bool = False


def _retrieve(future: asyncio.Future[list[Promise]]) -> None:
    # A submitter that went away never reads its future; reading the exception here
    # keeps asyncio from reporting it as never retrieved.
    if not future.cancelled():
        future.exception()


def _signer_key(ledger: Ledger, entry: Entry) -> bytes | None:
    """The roster's Ed25519 key for a receipt's device (``None`` for other entries)."""
    if not isinstance(entry, Receipt):
        return None
    return ledger.roster.device(entry.device)[1].sign_pk


class Sequencer:
    """Owns appends to the log (see the module docstring)."""

    def __init__(
        self,
        *,
        state: LogState,
        store: Store,
        notifier: Notifier,
        metrics: Metrics,
        clock: Clock,
        batch_max: int,
    ) -> None:
        self.state = state
        self._store = store
        self._notifier = notifier
        self._metrics = metrics
        self._clock = clock
        self._batch_max = batch_max
        self._queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pending: dict[int, asyncio.Future[list[Promise]]] = {}
        self.on_commit: list[Callable[[], None]] = []

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the sequencing task (after the state was recovered)."""
        self._task = asyncio.create_task(self._run(), name="docket-sequencer")

    async def close(self) -> None:
        """Stop accepting items, then drain the queue and finish the commit in progress."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    # -- submitting -------------------------------------------------------------------

    async def submit(
        self,
        entries: Sequence[Entry],
        *,
        draft_keys: bytes | None = None,
        ciphertext: bytes | None = None,
        group: bool = False,
        verified_key: bytes | None = None,
        inline: bytes | None = None,
    ) -> list[Promise]:
        """Queue entries for the log; return their promises once they are durable.

        ``verified_key``: for a single draft whose signature the caller verified under
        that key (passed to :meth:`Ledger.apply_entry`).  ``ciphertext``: a small draft's
        ciphertext, written in the same transaction as its entry.  ``inline``: the draft's inline
        notice object (:class:`~server.services.notifier.Notice`).

        Raises the ledger's :class:`ProtocolError` if an entry is invalid, or
        :class:`UnavailableError`/:class:`InsufficientStorageError` if the commit failed
        (then nothing was logged).
        """
        if self._closing or self._task is None:
            raise UnavailableError("the server is shutting down")
        self.state.require_writable()
        future: asyncio.Future[list[Promise]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self._queue.append(
            _Item(
                entries=tuple(entries),
                future=future,
                draft_keys=draft_keys,
                ciphertext=ciphertext,
                group=group,
                verified_key=verified_key,
                inline=inline,
            )
        )
        self._wakeup.set()
        # Shielded: a client that disconnects does not un-log what it sent.
        return await asyncio.shield(future)

    def pending(self, index: int) -> asyncio.Future[list[Promise]] | None:
        """The future of the sequenced-but-uncommitted item holding entry ``index``."""
        return self._pending.get(index)

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            batch = self._collect()
            if batch.poisoned:
                await self._abandon(batch, UnavailableError("internal error; nothing was logged"))
            elif batch.records:
                await self._commit(batch)

    def _collect(self) -> _Batch:
        batch = _Batch()
        while self._queue and len(batch.records) < self._batch_max:
            item = self._queue.popleft()
            try:
                records, promises = self._sequence(item, batch)
            except ProtocolError as exc:
                item.future.set_exception(exc)
                continue
            except Exception:
                log.exception("sequencing failed unexpectedly")
                item.future.set_exception(UnavailableError("internal error; nothing was logged"))
                batch.poisoned = True
                break
            batch.items.append((item, promises))
            batch.records.extend(records)
            for record in records:
                self._pending[record.index] = item.future
        return batch

    def _sequence(self, item: _Item, batch: _Batch) -> tuple[list[AppendRecord], list[Promise]]:
        """Validate and apply one item to the in-memory state; build its rows."""
        self.state.require_writable()
        first = item.entries[0]
        if isinstance(first, Genesis):
            if self.state.ledger is not None or self.state.frontier.size != 0:
                raise AlreadyFoundedError("the talks are already founded")
            self.state.ledger = self.state.new_ledger(first)
            return self._records(item, self.state.ledger, batch)
        ledger = self.state.require_ledger()
        if item.group:
            # Check all before applying any: all or nothing.  The check verified each
            # receipt's signature under its device's roster key: apply without again.
            for entry in item.entries:
                ledger.check(entry)
            try:
                for entry in item.entries:
                    ledger.apply_entry(entry, verified_key=_signer_key(ledger, entry))
            except Exception as exc:
                raise _Poisoned("a receipt group failed half-way") from exc
        else:
            # A round record's root must be this log's root just before it.
            frontier = self.state.frontier
            check_tree_claim(first, frontier.size, lambda _size: frontier.root())
            ledger.apply_entry(first, verified_key=item.verified_key)
        return self._records(item, ledger, batch)

    def _records(
        self, item: _Item, ledger: Ledger, batch: _Batch
    ) -> tuple[list[AppendRecord], list[Promise]]:
        start = ledger.size - len(item.entries)
        frontier = self.state.frontier
        if frontier.size != start:
            raise _Poisoned(f"frontier at {frontier.size}, ledger entry at {start}")
        now = self._clock()
        records: list[AppendRecord] = []
        promises: list[Promise] = []
        for offset, entry in enumerate(item.entries):
            index = start + offset
            leaf = LeafHash(entry.leaf)
            nodes = tuple(frontier.append(leaf))
            promise = make_promise(
                key=self.state.log_key,
                origin=self.state.origin,
                index=index,
                leaf=leaf,
                time=now,
            )
            promises.append(promise)
            records.append(self._record(index, entry, leaf, nodes, promise, ledger, item, batch))
            record = records[-1]
            if record.inbox:
                devices = tuple(device for device, _ in record.inbox)
                batch.notices.append(
                    Notice(
                        index=index,
                        kind=record.kind,
                        devices=devices,
                        broadcast=BROADCAST in devices,
                        inline=item.inline if isinstance(entry, DraftHeader) else None,
                        sender=entry.sender if isinstance(entry, DraftHeader) else None,
                    )
                )
        return records, promises

    def _record(  # noqa: PLR0917 - private, called from one place
        self,
        index: int,
        entry: Entry,
        leaf: LeafHash,
        nodes: tuple[tuple[int, int, bytes], ...],
        promise: Promise,
        ledger: Ledger,
        item: _Item,
        batch: _Batch,
    ) -> AppendRecord:
        # One AppendRecord built directly per entry (no dataclasses.replace copies).
        kind = entry_kind(entry)
        inbox: tuple[tuple[bytes, str], ...] = ()
        draft_row: DraftRow | None = None
        receipt_row: ReceiptRow | None = None
        enrols: str | None = None
        if isinstance(entry, RosterChange):
            batch.everyone = True
            enrols = entry.args.member if entry.op in ENROLLING_OPS else None
            inbox = ((BROADCAST, kind),)
        elif isinstance(entry, DraftHeader):
            if item.draft_keys is None:
                raise _Poisoned("a draft without its wrapped keys")
            batch.devices.update(entry.recipients)
            inbox = tuple((bytes(r), kind) for r in entry.recipients)
            draft_row = DraftRow(
                sender=entry.sender,
                sender_member=ledger.drafts[leaf].sender_member,
                msg=entry.msg,
                channel=entry.channel,
                ct_hash=entry.ct_hash,
                ct_len=entry.ct_len,
                keys=item.draft_keys,
                ciphertext=item.ciphertext,
            )
        elif isinstance(entry, Receipt):
            sender = bytes(ledger.drafts[entry.entry].header.sender)
            batch.devices.add(sender)
            inbox = ((sender, kind),)
            receipt_row = ReceiptRow(draft_idx=entry.index, device=entry.device, kind=entry.kind)
        elif isinstance(entry, Act):
            # Acts concern the talks as a whole (rounds, grants, calls): every device
            # hears of them, as of roster changes.
            batch.everyone = True
            inbox = ((BROADCAST, kind),)
        elif not isinstance(entry, Genesis):  # pragma: no cover - Entry is a closed union
            raise _Poisoned("unknown entry type")
        return AppendRecord(
            index=index,
            kind=kind,
            leaf=bytes(leaf),
            body=entry.to_bytes(),
            promise=promise.raw,
            nodes=nodes,
            inbox=inbox,
            draft=draft_row,
            receipt=receipt_row,
            enrols=enrols,
            genesis=isinstance(entry, Genesis),
        )

    async def _commit(self, batch: _Batch) -> None:
        started = time.perf_counter()
        try:
            await self._store.write(append_batch_txn, batch.records)
        except Exception as exc:
            self._metrics.commit_failed()
            log.exception("commit of %d entries failed", len(batch.records))
            if is_disk_full(exc):
                await self._abandon(batch, InsufficientStorageError("the disk is full"))
            else:
                await self._abandon(batch, UnavailableError("commit failed; nothing was logged"))
            return
        crash_point("append.commit")
        last = batch.records[-1]
        self.state.committed_size = last.index + 1
        self.state.committed_root = self.state.frontier.root()
        for record in batch.records:
            self._pending.pop(record.index, None)
        for item, promises in batch.items:
            if not item.future.done():
                item.future.set_result(promises)
        self._notifier.publish(batch.devices, everyone=batch.everyone, notices=batch.notices)
        self._metrics.observe_batch([r.kind for r in batch.records], time.perf_counter() - started)
        for callback in self.on_commit:
            callback()

    async def _abandon(self, batch: _Batch, error: ProtocolError) -> None:
        """Give no promise for anything in ``batch``; rebuild the state from the store.

        The state is rebuilt first: a submitter told of the failure may retry at once,
        and must then meet a ledger without the abandoned entries.
        """
        await self.rebuild()
        for record in batch.records:
            self._pending.pop(record.index, None)
        for item, _ in batch.items:
            if not item.future.done():
                item.future.set_exception(type(error)(error.detail))

    async def rebuild(self) -> None:
        """Reload the ledger and frontier from the database (after a failed commit)."""
        try:
            recovered = await self._store.read(
                recover_txn,
                origin=self.state.origin,
                log_public=self.state.log_public,
                checkpoint_file=None,
            )
        except Exception:
            log.exception("cannot rebuild the log state from the store")
            self.state.go_read_only("cannot rebuild the log state after a failed commit")
            return
        self.state.ledger = recovered.ledger
        self.state.frontier = recovered.frontier
        self.state.committed_size = recovered.size
        self.state.committed_root = recovered.root
        if recovered.problem is not None:
            self.state.go_read_only(recovered.problem, code=recovered.code)
