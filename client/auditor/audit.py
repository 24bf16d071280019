"""Running one audit: :func:`audit_log`, steps 1 to 5 of :mod:`client.auditor` in order.

1. **Trust root.**  Entry 0 parses as a genesis signed by its mediator and its leaf hash
   equals the pinned talks id.  Without it nothing else can be checked: the audit stops
   with a single alarm.

Steps 2 to 5 are spelt out where they run: :mod:`client.auditor.chunks` and
:mod:`client.auditor.pipeline` (2, signatures), :mod:`client.auditor.replay` (3, rules),
:mod:`client.auditor.checkpoints` (4, Merkle roots and checkpoints; 5, the previous
audit); :mod:`client.auditor.summary` then reports what is still waiting.
"""

from __future__ import annotations

import gc
import itertools
import os
from collections.abc import Callable, Iterable, Sequence

from client.auditor.checkpoints import _Checkpoints, _open_checkpoints
from client.auditor.lifecycle import lifecycle_report
from client.auditor.negotiation import negotiation_summary
from client.auditor.pipeline import DEFAULT_CHUNK, _chunks, _pipeline
from client.auditor.promises import promise_alarms
from client.auditor.replay import _Replay
from client.auditor.report import EMPTY_LOG, ENTRY_KINDS, Alarm, AuditReport, AuditState
from client.auditor.summary import equivocations, summarise
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.merkle import EMPTY_ROOT

Progress = Callable[[int, int], None]
"""``progress(entries_done, entries_total)``; the total is 0 when not known in advance."""


def _fatal(alarm: Alarm, size: int = 0) -> AuditReport:
    return AuditReport(
        talks=b"",
        fingerprint="",
        origin="",
        title="",
        size=size,
        root=EMPTY_ROOT,
        entries=dict.fromkeys(ENTRY_KINDS, 0),
        checkpoints=[],
        unquorate=0,
        channels=[],
        delegations=[],
        unreceived=[],
        unacknowledged=[],
        alarms=[alarm],
        state=None,
    )


def audit_log(
    entries: Iterable[bytes] | Sequence[bytes],
    *,
    pinned_talks: bytes,
    checkpoints: Sequence[bytes],
    previous: AuditState | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    broken_promises: Sequence[bytes] = (),
    now: int | None = None,
) -> AuditReport:
    """Verify a whole log (steps 1-5 of :mod:`client.auditor`) and summarise it.

    ``entries`` are the raw log entries from index 0, in order (any iterable: it is read
    once, chunk by chunk).  ``checkpoints`` are C2SP checkpoint notes with whatever
    cosignatures were collected (at least the latest).  ``previous`` is the
    :attr:`AuditReport.state` of an earlier audit of the same talks.  ``workers`` is the
    number of verifying processes (default: every CPU; 1 verifies in this process).
    ``broken_promises`` are broken-promise bundles clients exported
    (:mod:`client.auditor.promises`); ``now`` (seconds) is the verifier's clock for them.
    """
    if chunk_size < 1 or chunk_size & (chunk_size - 1):
        raise ValueError("chunk_size must be a power of two")  # programming error
    # The replay keeps every draft and receipt alive, millions of objects on a long log;
    # the cyclic collector would walk them again and again while nothing here creates
    # garbage cycles worth collecting early.  Pause it for the audit, as timeit does.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _audit(
            entries,
            pinned_talks=pinned_talks,
            checkpoints=checkpoints,
            previous=previous,
            workers=workers,
            progress=progress,
            chunk_size=chunk_size,
            broken_promises=broken_promises,
            now=now,
        )
    finally:
        if collecting:
            gc.enable()


def _audit(
    entries: Iterable[bytes] | Sequence[bytes],
    *,
    pinned_talks: bytes,
    checkpoints: Sequence[bytes],
    previous: AuditState | None,
    workers: int | None,
    progress: Progress | None,
    chunk_size: int,
    broken_promises: Sequence[bytes],
    now: int | None,
) -> AuditReport:
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    total = len(entries) if isinstance(entries, Sequence) else 0
    chunks = _chunks(entries, chunk_size)

    # 1. The trust root: entry 0 is the pinned genesis.
    first = next(chunks, None)
    if first is None:
        return _fatal(Alarm(code=EMPTY_LOG, reason="the log has no entries"))
    try:
        genesis = Genesis.from_bytes(first[1][0])
        genesis.check_talks(pinned_talks)
    except ProtocolError as exc:
        return _fatal(Alarm(code=exc.code, reason=f"genesis: {exc.detail}", index=0))

    # 4a. Checkpoint notes: the log's signature and the origin, before anything else.
    alarms: list[Alarm] = []
    opened = _open_checkpoints(checkpoints, genesis, alarms)

    # 2-3. Verify and replay every entry, chunk by chunk.
    replay = _Replay(genesis, _Checkpoints(genesis, opened, previous, alarms))
    done = 0
    # Exactly a list or tuple (no subclass with its own indexing): workers may read it.
    log = entries if isinstance(entries, list | tuple) and type(entries) in (list, tuple) else None
    for start, parsed, checks, verified in _pipeline(
        itertools.chain([first], chunks), replay, workers, log
    ):
        replay.absorb(start, parsed, checks, verified, chunk_size)
        done += len(parsed)
        if progress is not None:
            progress(done, total)

    # The last bracket: the checkpoints at the log's own size.
    replay.checkpoints.evaluate(done, replay.ledger.roster)
    replay.bracket(done)
    # 4b-5. Roots, quorum, the previous audit; then the summary.
    root, reports, unquorate = replay.checkpoints.finish(done, replay.ledger.roster)
    channels, delegations, unreceived, unacknowledged = summarise(
        replay.ledger, replay.device_member
    )
    alarms.extend(equivocations(replay.ledger, replay.device_member))
    alarms.extend(promise_alarms(broken_promises, pinned_talks, now=now))
    alarms.sort(key=lambda a: (a.index is None, a.index or 0, a.size or 0, a.code))
    return AuditReport(
        talks=genesis.talks_id,
        fingerprint=genesis.fingerprint,
        origin=genesis.origin,
        title=genesis.title,
        size=done,
        root=root,
        entries=replay.counts,
        checkpoints=reports,
        unquorate=unquorate,
        channels=channels,
        delegations=delegations,
        unreceived=unreceived,
        unacknowledged=unacknowledged,
        alarms=alarms,
        state=AuditState(talks=genesis.talks_id, origin=genesis.origin, size=done, root=root),
        lifecycle=lifecycle_report(replay.ledger, replay.receipts_by),
        negotiation=negotiation_summary(replay.ledger),
    )
