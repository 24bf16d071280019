"""``LogSync``: verifying the log, keeping the server's promises, witnessing, gossip.

2. **Sync** (:meth:`LogSync.sync`).  Fetch the latest checkpoint and verify the
   log's signature with the key the genesis names.  Smaller than the last verified
   checkpoint is ``rollback``; same size with another root, or a failing consistency
   proof, is ``fork``.  Fetch the new entries, apply each through the protocol's
   :class:`~protocol.ledger.Ledger` (signatures, authority, counters, lineage,
   receipts; a failure maps to its alarm), and require the Merkle root over *all*
   entries to equal the checkpoint's root.  Only then commit entries and checkpoint to
   the local state in one transaction.  Promises the server made for our writes must be
   honoured by the entries at their indices (``gap``), within
   :attr:`~client.core.ClientCore.stale_after_ms` of their arrival by our clock
   (``stale_log``), and never two for one index (``fork``).  An entry the ledger refuses
   whose signature does not verify under the key of the device it names is ``forged``,
   whichever rule the ledger tripped over first.
3. **Witness.**  The mediator and each delegation's head cosign the verified checkpoint
   (:mod:`client.witness`), never anything inconsistent with what they cosigned before.
7. **Gossip** (:meth:`LogSync.check_checkpoint`): a checkpoint note another
   participant received is checked against our verified log, which proves a split view
   (``fork``) as soon as two views meet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from client.core import ClientCore, now_ms
from client.errors import Alarm, NetworkError, ServerError, UsageError, VerificationError
from client.state import StoredCheckpoint
from client.witness import Witness
from protocol import crypto, merkle
from protocol.checkpoint import Checkpoint, SignedNote, open_checkpoint
from protocol.encoding import Fields, JSONValue, b64d, b64e, canonical
from protocol.errors import BadSignatureError, ProtocolError
from protocol.ledger import parse_entry, raw_signature_verifies, signature_claim
from protocol.quorum import describe_rule, quorum_cosigners, rule_met
from protocol.receipt import Promise
from protocol.roster import CONTEXTS as ROSTER_CONTEXTS
from protocol.roster import Roster, RosterChange

ENTRIES_PAGE = 1000
LATEST_NOTE_KEY = "latest_note"  # state: the newest note seen at the verified size
WAIT_FOR_INDEX = 10.0

FetchCheckpoint = Callable[[int | None], Awaitable[tuple[Checkpoint, SignedNote, str]]]
"""Fetch and verify the latest checkpoint (``None``) or the one of a given size: the
checkpoint, its signed note, and the note's text."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncResult:
    """What one :meth:`LogSync.sync` verified."""

    size: int
    root: bytes
    new_entries: int
    cosigned: bool
    trusted: bool
    cosigners: tuple[str, ...]

    def to_json(self) -> dict[str, JSONValue]:
        """JSON form (what ``--json`` prints)."""
        return {
            "cosigned": self.cosigned,
            "cosigners": list(self.cosigners),
            "new_entries": self.new_entries,
            "root": b64e(self.root),
            "size": self.size,
            "trusted": self.trusted,
        }


class LogSync:
    """The verified log kept up to date with the server's (steps 2, 3 and 7)."""

    def __init__(self, core: ClientCore, *, fetch_checkpoint: FetchCheckpoint | None = None):
        self.core = core
        # Every checkpoint read goes through this one callable; the facade routes it
        # through its own method, the seam the fault-injection tests patch.
        self.fetch_checkpoint: FetchCheckpoint = (
            fetch_checkpoint or self.fetch_checkpoint_from_server
        )

    async def fetch_checkpoint_from_server(
        self, size: int | None = None
    ) -> tuple[Checkpoint, SignedNote, str]:
        """``GET /v1/log/checkpoint``, verified against the pinned genesis."""
        genesis = self.core.genesis()
        params: dict[str, str | int] = {} if size is None else {"size": size}
        data = await self.core.transport().request(
            "GET", "/v1/log/checkpoint", params=params, raw=True
        )
        try:
            cp, note = open_checkpoint(
                data, origin=genesis.origin, log_name=genesis.log_name, log_key=genesis.log_key
            )
        except ProtocolError as exc:
            raise self.core.record(Alarm.from_protocol(exc, what="checkpoint")) from exc
        return cp, note, data.decode("utf-8")

    async def consistency(self, old: int, new: int) -> list[bytes]:
        """The server's consistency proof from size ``old`` to ``new`` (well-formed, not
        yet verified)."""
        if old in (0, new):
            return []
        answer = await self.core.transport().get("/v1/log/proof/consistency", old=old, new=new)
        try:
            f = Fields(answer, "consistency")
            f.literal("old", old)
            f.literal("new", new)
            proof = [b64d(p, length=32, what="proof") for p in f.list("proof", max_items=128)]
            f.done()
        except ProtocolError as exc:
            raise self.core.record(Alarm.from_protocol(exc, what="consistency proof")) from exc
        return proof

    async def entries(self, start: int, end: int, *, partial: bool = False) -> list[bytes]:
        """Entries ``[start, end)`` from the server.  A short answer is a ``gap`` alarm,
        unless ``partial``: then what was served is returned, for the auditor to judge
        (it reports a log shorter than its checkpoint as ``log_truncated``)."""
        out: list[bytes] = []
        while start + len(out) < end:
            first = start + len(out)
            last = min(end, first + ENTRIES_PAGE)
            answer = await self.core.transport().get("/v1/log/entries", start=first, end=last)
            items = answer.get("entries") if isinstance(answer, dict) else None
            if partial and isinstance(items, list) and not items:
                return out
            if not isinstance(items, list) or not items:
                raise self.core.record(
                    Alarm("gap", f"server returned no entries for [{first}, {last})", index=first)
                )
            for item in items:
                expected = start + len(out)
                if (
                    not isinstance(item, dict)
                    or item.get("index") != expected
                    or not isinstance(item.get("entry"), dict)
                ):
                    raise self.core.record(
                        Alarm("gap", "server returned entries out of sequence", index=expected)
                    )
                if expected >= end:
                    break
                out.append(canonical(item["entry"]))
        return out

    async def sync(self, *, witness: bool = True) -> SyncResult:
        """Verify and store everything new in the log (see the module docstring, step 2).

        When this device is a witness and ``witness`` is true, also cosign the verified
        checkpoint and submit the cosignature.
        """
        core = self.core
        log = core.log
        stored = core.state.checkpoint()
        try:
            cp, note, note_text = await self.fetch_checkpoint(None)
        except ServerError as exc:
            if exc.status in (401, 403) and core.device_id not in log.ledger.roster.devices:
                member = core.state.member_id() or "MEMBER"
                raise UsageError(
                    f"this device is not enrolled yet (server: {exc.code}); whoever invited "
                    f"you enrols it with 'docket enrol {member}' (a head with 'docket "
                    "delegation create')"
                ) from exc
            raise
        old_size = log.size
        new_entries = 0
        if stored is not None and cp.size < stored.size:
            raise core.record(
                Alarm(
                    "rollback",
                    f"checkpoint size {cp.size} is below the {stored.size} already verified",
                )
            )
        if cp.size < old_size:
            # Entries are stored only with the checkpoint that covers them, so only the
            # pinned genesis can be ahead of every checkpoint: the talks were just
            # founded or joined and the server has not signed a checkpoint since.
            return SyncResult(
                size=0, root=cp.root, new_entries=0, cosigned=False, trusted=False, cosigners=()
            )
        if cp.size == old_size:
            if not crypto.equal(cp.root, log.root()):
                raise core.record(
                    Alarm(
                        "fork", f"checkpoint root at size {cp.size} differs from the verified one"
                    )
                )
        else:
            if stored is not None:
                proof = await self.consistency(stored.size, cp.size)
                try:
                    merkle.verify_consistency(stored.size, cp.size, stored.root, cp.root, proof)
                except ProtocolError as exc:
                    raise core.record(
                        Alarm(
                            "fork", f"new checkpoint is not consistent with the last: {exc.detail}"
                        )
                    ) from exc
            entries = await self.entries(old_size, cp.size)
            try:
                for i, data in enumerate(entries):
                    try:
                        log.append(data)
                    except ProtocolError as exc:
                        cause = _forgery_or(exc, log.ledger.roster, data)
                        raise core.record(
                            Alarm.from_protocol(cause, index=old_size + i, what="log entry")
                        ) from exc
                if not crypto.equal(log.root(), cp.root):
                    raise core.record(
                        Alarm("fork", "the entries served do not hash to the checkpoint's root")
                    )
            except Alarm:
                # The in-memory log holds unverifiable entries now: drop it, so it is
                # rebuilt from the last committed state.
                core.forget_log()
                raise
            core.state.commit_entries(
                old_size, entries, StoredCheckpoint(size=cp.size, root=cp.root, note=note_text)
            )
            new_entries = len(entries)
        if stored is not None and stored.size == cp.size and stored.note != note_text:
            # Same size, same root (checked above), newer cosignatures: kept beside the
            # stored note, so a reader on a quiet log sees the witnesses keep vouching
            # for it (client.freshness.Freshness.reader_view).
            core.state.set(LATEST_NOTE_KEY, {"note": note_text, "size": cp.size})
        if stored is None or stored.size != cp.size:
            core.state.set(
                "checkpoint",
                StoredCheckpoint(size=cp.size, root=cp.root, note=note_text).to_json(),
            )
        self._check_promises(cp.size)
        cosigners = tuple(sorted(quorum_cosigners(cp, note, core.roster.witnesses())))
        trusted = rule_met(set(cosigners), core.roster)
        before = core.state.trusted_checkpoint()
        if trusted and before is not None and before.size < cp.size:
            # A policy change takes effect only once the quorum in force before it has
            # cosigned a checkpoint past it (docs/PROTOCOL.md section 9a, step 7).
            old = core.log.roster_at(before.size)
            if old.policy != core.roster.policy:
                trusted = rule_met(quorum_cosigners(cp, note, old.witnesses()), old)
        if trusted:
            core.state.set(
                "trusted", StoredCheckpoint(size=cp.size, root=cp.root, note=note_text).to_json()
            )
        cosigned = False
        if witness and not core.state.get("frozen"):
            cosigned = await self._cosign(cp, cosigners)
        return SyncResult(
            size=cp.size,
            root=cp.root,
            new_entries=new_entries,
            cosigned=cosigned,
            trusted=trusted,
            cosigners=cosigners,
        )

    def keep_promise(self, promise: Promise) -> None:
        """Keep the server's verified promise for one of our writes, with its arrival
        time by our clock.  A second promise for the same index naming another entry is
        the server committing to two different logs: evidence of a fork."""
        held = self.core.state.promises().get(promise.index)
        if held is not None:
            if held.get("leaf") == b64e(promise.leaf):
                return  # the same promise again (an idempotent resubmission)
            raise self.core.record(
                Alarm(
                    "fork",
                    "the server promised two different entries at this index",
                    index=promise.index,
                )
            )
        self.core.state.add_promise(promise.index, promise.to_json(), seen=now_ms())

    def _check_promises(self, size: int) -> None:
        """Every promise below ``size`` must name the entry the log has at its index, and
        none may stay uncheckpointed for longer than ``stale_after_ms`` after it arrived
        (timed by our clock, not by the server's ``time`` in the promise)."""
        core = self.core
        log = core.log
        now = now_ms()
        seen = core.state.promise_seen()
        for index, promise in core.state.promises().items():
            if index >= size:
                made = seen.get(index, promise.get("time"))
                if isinstance(made, int) and now - made > core.stale_after_ms:
                    raise core.record(
                        Alarm(
                            "stale_log",
                            f"the server promised this entry {(now - made) // 1000}s ago and "
                            f"its checkpoints still stop at size {size} (once past the bound, "
                            f"'docket disclose {index} --broken-promise' exports the proof)",
                            index=index,
                        )
                    )
                continue
            try:
                leaf = b64d(promise.get("leaf"), length=32)
            except ProtocolError:
                continue
            if not crypto.equal(leaf, log.leaf(index)):
                raise core.record(
                    Alarm(
                        "gap",
                        "the server promised another entry at this index ('docket disclose "
                        f"{index} --broken-promise' exports the proof)",
                        index=index,
                    )
                )
        core.state.drop_promises_below(size)

    async def _cosign(self, cp: Checkpoint, cosigners: Sequence[str]) -> bool:
        core = self.core
        wid = core.witness_id()
        if wid is None:
            return False
        genesis = core.genesis()
        witness = Witness(core.state, origin=genesis.origin, witness_id=wid, keys=core.keys)
        if witness.name in cosigners:
            return False
        old = witness.size
        proof = await self.consistency(old, cp.size) if 0 < old < cp.size else []
        line = witness.cosign(cp, proof, timestamp=int(time.time()))
        await core.transport().post("/v1/log/cosignatures", {"signature": line, "size": cp.size})
        return True

    async def wait_for(self, index: int, *, timeout: float = WAIT_FOR_INDEX) -> None:
        """Sync until the verified log covers ``index`` (the server checkpoints in
        batches, so a just-promised entry can take a moment to appear)."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            result = await self.sync()
            if result.size > index:
                return
            if time.monotonic() > deadline:
                # Not an alarm yet: the promise is kept, and a later sync raises ``gap``
                # (another entry at that index) or ``stale_log`` (never checkpointed).
                raise NetworkError(
                    f"the server has not checkpointed log index {index} after "
                    f"{timeout:.0f}s; it will be verified at the next sync"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    # -- gossip -----------------------------------------------------------------------------

    def checkpoint_note(self) -> str:
        """The last checkpoint this client verified, as the signed note it received (with
        its cosignatures): what to hand to other participants to compare views."""
        stored = self.core.state.checkpoint()
        if stored is None:
            raise UsageError("no checkpoint verified yet (sync first)")
        return stored.note

    async def check_checkpoint(self, note: bytes | str) -> Checkpoint:
        """Gossip: check a checkpoint note someone else received from the server against
        the log this client verified, and return it if the two views agree.

        A server showing different logs to different people must sign different roots
        for them; once two such checkpoints meet, the split is proven.  Steps:

        1. the note must carry the log's signature (else it proves nothing: a
           :class:`VerificationError`, no alarm);
        2. sync, so our view is as recent as the server lets it be;
        3. a checkpoint no larger than our verified log must have our root at its size
           (``fork``: the server signed two roots for one history);
        4. a larger one must be one the server can prove extends ours: it must serve a
           consistency proof from our size that verifies (``fork`` if it does not), and
           failing to serve one for a size its own key signed is ``stale_log``.
        """
        core = self.core
        genesis = core.genesis()
        data = note.encode("utf-8") if isinstance(note, str) else bytes(note)
        try:
            cp, _ = open_checkpoint(
                data, origin=genesis.origin, log_name=genesis.log_name, log_key=genesis.log_key
            )
        except ProtocolError as exc:
            raise VerificationError(
                f"not a checkpoint of this log: {exc.detail}", code=exc.code
            ) from exc
        await self.sync(witness=False)
        log = core.log
        if cp.size <= log.size:
            if not crypto.equal(cp.root, log.root(cp.size)):
                raise core.record(
                    Alarm(
                        "fork",
                        f"a checkpoint signed by the log gives size {cp.size} the root "
                        f"{b64e(cp.root)}; the verified log has {b64e(log.root(cp.size))}",
                    )
                )
            return cp
        try:
            answer = await core.transport().get(
                "/v1/log/proof/consistency", old=log.size, new=cp.size
            )
            f = Fields(answer, "consistency")
            f.literal("old", log.size)
            f.literal("new", cp.size)
            proof = [b64d(p, length=32, what="proof") for p in f.list("proof", max_items=128)]
            f.done()
        except (ServerError, ProtocolError) as exc:
            if isinstance(exc, ServerError) and exc.status >= 500:
                raise  # unavailable, not refusing: ask again later
            raise core.record(
                Alarm(
                    "stale_log",
                    f"the log signed a checkpoint of size {cp.size}, but the server shows "
                    f"{log.size} entries and cannot prove the larger log extends them "
                    f"({getattr(exc, 'code', 'invalid')})",
                )
            ) from exc
        try:
            merkle.verify_consistency(log.size, cp.size, log.root(), cp.root, proof)
        except ProtocolError as exc:
            raise core.record(
                Alarm(
                    "fork",
                    f"a checkpoint signed by the log at size {cp.size} does not extend the "
                    f"verified log of {log.size} entries: {exc.detail}",
                )
            ) from exc
        return cp

    async def quorum_checkpoint(self, index: int) -> tuple[Checkpoint, str]:
        """The largest checkpoint known with the witness quorum that covers the entry at
        ``index`` and agrees with the verified log.

        Quorum is counted with the roster in force at ``index``, as the arbitrator's
        verifier counts it.  Candidates: the latest checkpoint, and the ones this client
        last verified and last saw trusted (re-fetched: cosignatures keep arriving).
        """
        core = self.core
        log = core.log
        roster = log.roster_at(index)
        candidates: list[int | None] = [None]
        for stored in (core.state.trusted_checkpoint(), core.state.checkpoint()):
            if stored is not None:
                candidates.append(stored.size)
        seen: set[int] = set()
        best: tuple[Checkpoint, str] | None = None
        closest = (0, 0)
        for size in candidates:
            cp, note, text = await self.fetch_checkpoint(size)
            if cp.size in seen:
                continue
            seen.add(cp.size)
            if cp.size <= index or cp.size > log.size:
                continue
            if not crypto.equal(cp.root, log.root(cp.size)):
                raise core.record(
                    Alarm("fork", f"checkpoint at size {cp.size} disagrees with the verified log")
                )
            names = quorum_cosigners(cp, note, roster.witnesses())
            if rule_met(names, roster):
                if best is None or cp.size > best[0].size:
                    best = (cp, text)
            elif len(names) > closest[1]:
                closest = (cp.size, len(names))
        if best is not None:
            return best
        have = f" (best: size {closest[0]} with {closest[1]})" if closest[1] else ""
        raise VerificationError(
            f"no checkpoint with the witness quorum ({describe_rule(roster)}) covers log index "
            f"{index} yet{have}: the witnesses must sync first",
            code="no_quorum",
        )


def _forgery_or(exc: ProtocolError, roster: Roster, data: bytes) -> ProtocolError:
    """What to report for an entry the ledger refused.

    The ledger stops at the first rule an entry breaks, and for a tampered entry that can
    be any rule: a changed ``roster`` field reads as a stale roster state, a changed
    ``counter`` as a gap.  When the entry's signature does not verify under the key of
    the device it names, the truth is simpler: it is not what its author signed, and the
    alarm says so (``forged``) instead of naming a symptom.
    """
    if exc.code == BadSignatureError.code:
        return exc
    try:
        entry = parse_entry(data)
    except ProtocolError:
        return exc
    claim = signature_claim(entry)
    if claim is not None:
        device, context = claim
    elif isinstance(entry, RosterChange):
        device, context = entry.author, ROSTER_CONTEXTS[entry.record_type]
    else:
        return exc
    try:
        _, public = roster.device(device)
    except ProtocolError:
        return exc
    if raw_signature_verifies(public.sign_pk, context, data, entry.sig):
        return exc
    return BadSignatureError(
        f"the entry is not what its author signed (the ledger first saw {exc.code}: {exc.detail})"
    )
