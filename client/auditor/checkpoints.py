"""Steps 4 and 5: the log's Merkle roots against its checkpoints and the previous audit.

4. **Merkle root.**  The RFC 9162 root over all entries, as served, equals every
   checkpoint's root at its size.  Each checkpoint must carry the log's signature
   (``genesis.log_key`` under ``genesis.log_name``, origin ``genesis.origin``) and is
   counted as trusted only with the witness quorum of the roster at its size
   (:func:`protocol.evidence.require_trusted`).  Checkpoints without quorum are counted;
   only the latest one lacking quorum is an alarm (``no_quorum``): older ones may simply
   have been fetched before the witnesses caught up.  Alarms: ``bad_checkpoint`` (not
   signed by the log, wrong origin, malformed), ``root_mismatch``, ``log_truncated``
   (a checkpoint larger than the log served), ``fork`` (two signed roots for one size),
   ``no_checkpoint`` (none verified: nothing binds the entries to the log).
5. **Consistency with the previous audit.**  A log shorter than the :class:`AuditState`
   saved last time is a ``rollback``; a different root at the old size is a ``fork``.

The notes are opened before any entry is read (4a, :func:`_open_checkpoints`), so that
the workers hash a partial root at every size a checkpoint names; the roots are compared
once every entry is in (4b, :meth:`_Checkpoints.finish`).  Invalid entries still count in
the Merkle tree: the root is over the bytes the log holds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from client.auditor.report import (
    BAD_CHECKPOINT,
    FORK,
    LOG_TRUNCATED,
    NO_CHECKPOINT,
    NO_QUORUM,
    ROLLBACK,
    ROOT_MISMATCH,
    WRONG_TALKS,
    Alarm,
    AuditState,
    CheckpointReport,
)
from protocol import checkpoint as cpt
from protocol import merkle, quorum
from protocol.errors import CosignatureTimeError, ProtocolError
from protocol.evidence import require_trusted
from protocol.genesis import Genesis
from protocol.merkle import EMPTY_ROOT
from protocol.roster import Roster


class _ChunkEdge:
    """Perfect subtrees (level, hash), largest first, over the full chunks seen so far.

    Full chunks are perfect subtrees of one level, aligned on their size, so merging them
    exactly like :class:`protocol.merkle.Frontier` merges leaves yields the binary
    decomposition of the tree over every full chunk.  The root at any size is the fold,
    right to left, of that decomposition followed by the partial root of the next chunk
    (folding is right-associative, so the partial subtrees of a chunk may be folded
    first).
    """

    __slots__ = ("_edge",)

    def __init__(self) -> None:
        self._edge: list[tuple[int, bytes]] = []

    def append(self, level: int, node: bytes) -> None:
        while self._edge and self._edge[-1][0] == level:
            _, left = self._edge.pop()
            node = merkle.node_hash(left, node)
            level += 1
        self._edge.append((level, node))

    def root_with(self, partial: bytes | None) -> bytes:
        hashes = [h for _, h in self._edge]
        if partial is not None:
            hashes.append(partial)
        if not hashes:
            return EMPTY_ROOT
        acc = hashes[-1]
        for h in reversed(hashes[:-1]):
            acc = merkle.node_hash(h, acc)
        return acc


@dataclass(slots=True)
class _Opened:
    """A checkpoint note whose log signature verified."""

    checkpoint: cpt.Checkpoint
    note: cpt.SignedNote
    trusted: bool = False
    cosigners: tuple[str, ...] = ()
    needed: int = 0
    evaluated: bool = False
    future: tuple[str, ...] = ()
    times: tuple[int, ...] = ()
    """Timestamps (s) of the counted cosignatures of the roster's witnesses."""

    def evaluate(self, roster: Roster) -> None:
        """Check the witness quorum once, with the roster in force at this checkpoint;
        note the witnesses whose cosignature is dated in the future of this clock."""
        if self.evaluated:
            return
        self.evaluated = True
        self.needed = roster.quorum()
        try:
            self.cosigners = require_trusted(self.checkpoint, self.note, roster)
            self.trusted = True
        except ProtocolError:
            self.trusted = False
        view = quorum.evaluate(self.checkpoint, self.note, roster, now=int(time.time()))
        self.future = tuple(sorted(n for n, why in view.rejected.items() if "future" in why))
        self.times = tuple(view.cosigners.values())


def _open_checkpoints(
    notes: Sequence[bytes], genesis: Genesis, alarms: list[Alarm]
) -> list[_Opened]:
    """Step 4a: the notes that carry the log's signature and the genesis' origin; every
    other note becomes a ``bad_checkpoint`` alarm."""
    opened: list[_Opened] = []
    for note in notes:
        try:
            checkpoint, signed = cpt.open_checkpoint(
                note, origin=genesis.origin, log_name=genesis.log_name, log_key=genesis.log_key
            )
        except ProtocolError as exc:
            alarms.append(Alarm(code=BAD_CHECKPOINT, reason=exc.detail))
            continue
        opened.append(_Opened(checkpoint=checkpoint, note=signed))
    return opened


class _Checkpoints:
    """Steps 4b and 5 for one audit run: the log's roots at every size that a checkpoint
    or the previous audit names, folded in chunk by chunk as the replay goes, then
    compared once every entry is in."""

    def __init__(
        self,
        genesis: Genesis,
        opened: list[_Opened],
        previous: AuditState | None,
        alarms: list[Alarm],
    ) -> None:
        self.genesis = genesis
        self.opened = opened
        self.previous = previous
        self.alarms = alarms
        self.edge = _ChunkEdge()
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}
        self.by_size: dict[int, list[_Opened]] = {}
        for item in opened:
            self.by_size.setdefault(item.checkpoint.size, []).append(item)
        self.cuts = set(self.by_size)
        if previous is not None:
            self.cuts.add(previous.size)

    def cuts_in(self, start: int, length: int) -> tuple[int, ...]:
        """The sizes to root inside entries ``start .. start + length``, chunk-relative."""
        return tuple(sorted(s - start for s in self.cuts if start < s <= start + length))

    def evaluate(self, size: int, roster: Roster) -> None:
        """Quorum of the checkpoints at ``size``, with ``roster``, the roster after ``size``
        entries."""
        for item in self.by_size.get(size, ()):
            item.evaluate(roster)

    def cosigned_at(self, size: int) -> tuple[int, ...]:
        """Timestamps (s) of every counted cosignature on the (evaluated) checkpoints of
        ``size``: when witnesses saw the log at exactly that size."""
        return tuple(t for item in self.by_size.get(size, ()) for t in item.times)

    def fold(self, start: int, length: int, roots: dict[int, bytes], chunk_size: int) -> None:
        """Fold in the roots of the chunk of ``length`` entries at ``start`` (as
        :func:`client.auditor.chunks._verify_chunk` returned them)."""
        for width, node in roots.items():
            if width < chunk_size:
                self.roots[start + width] = self.edge.root_with(node)
        if length == chunk_size:
            self.edge.append(chunk_size.bit_length() - 1, roots[chunk_size])
            self.roots[start + length] = self.edge.root_with(None)

    def finish(self, size: int, roster: Roster) -> tuple[bytes, list[CheckpointReport], int]:
        """Steps 4b and 5 once every entry is in (``roster`` is the roster after them):
        roots, quorum, previous state."""
        self.evaluate(size, roster)
        root = self.roots[size]
        reports: list[CheckpointReport] = []
        for cp_size in sorted(self.by_size):
            items = self.by_size[cp_size]
            roots = {bytes(i.checkpoint.root) for i in items}
            if len(roots) > 1:
                self.alarms.append(
                    Alarm(
                        code=FORK,
                        reason="the log signed two checkpoints with different roots",
                        size=cp_size,
                    )
                )
            for item in items:
                matches: bool | None = None
                if cp_size > size:
                    self.alarms.append(
                        Alarm(
                            code=LOG_TRUNCATED,
                            reason=f"checkpoint commits to {cp_size} entries, "
                            f"the log served has {size}",
                            index=size,
                            size=cp_size,
                        )
                    )
                    # Quorum still tells whether witnesses saw the longer log.
                    item.evaluate(roster)
                else:
                    matches = item.checkpoint.root == self.roots[cp_size]
                    if not matches:
                        self.alarms.append(
                            Alarm(
                                code=ROOT_MISMATCH,
                                reason="checkpoint root differs from the root of the "
                                "entries served",
                                size=cp_size,
                            )
                        )
                if item.future:
                    self.alarms.append(
                        Alarm(
                            code=CosignatureTimeError.code,
                            reason="cosignature dated in the future by " + ", ".join(item.future),
                            size=cp_size,
                        )
                    )
                reports.append(
                    CheckpointReport(
                        size=cp_size,
                        root=item.checkpoint.root,
                        matches=matches,
                        trusted=item.trusted,
                        cosigners=item.cosigners,
                    )
                )
        unquorate = sum(1 for r in reports if not r.trusted)
        if not self.opened:
            self.alarms.append(
                Alarm(
                    code=NO_CHECKPOINT,
                    reason="no checkpoint signed by the log: nothing binds these entries "
                    "to what the server committed to",
                )
            )
        else:
            top = max(self.by_size)
            if not any(item.trusted for item in self.by_size[top]):
                needed = self.by_size[top][0].needed
                self.alarms.append(
                    Alarm(
                        code=NO_QUORUM,
                        reason=f"the latest checkpoint lacks the quorum of {needed} witness "
                        "cosignatures",
                        size=top,
                    )
                )
        self._check_previous(size)
        return root, reports, unquorate

    def _check_previous(self, size: int) -> None:
        prev = self.previous
        if prev is None:
            return
        if prev.talks != self.genesis.talks_id or prev.origin != self.genesis.origin:
            self.alarms.append(
                Alarm(code=WRONG_TALKS, reason="the previous audit state is for other talks")
            )
            return
        if prev.size > size:
            self.alarms.append(
                Alarm(
                    code=ROLLBACK,
                    reason=f"the log has {size} entries; a previous audit verified {prev.size}",
                    size=prev.size,
                )
            )
        elif self.roots[prev.size] != prev.root:
            self.alarms.append(
                Alarm(
                    code=FORK,
                    reason="the first entries differ from those a previous audit verified",
                    size=prev.size,
                )
            )

    # -- the summary ----------------------------------------------------------------
