"""Step 3, rules: every entry replayed through the ledger, in log order.

3. **Rules.**  Every entry replays through :class:`protocol.ledger.Ledger`, the machine
   the server and the clients run: authority against the roster in force at that index,
   roster chaining, per-sender counters, duplicate message ids and receipts, lineage,
   recipient sets equal to the channel's devices, receipt binding.  Times: the server
   logs entries in order and accepts a record only within minutes of its own clock, so
   a valid entry dated more than :data:`BACKDATE_TOLERANCE_MS` before an entry logged
   earlier is ``backdated`` (signatures cannot show it: a colluding sender and server
   can date a record at will; the alarm names the earlier entry, since either may be
   the one whose date is false).  And every entry's time must lie between the
   checkpoints that bracket it: a witness that cosigned a checkpoint of size ``s`` at
   time ``c`` saw a log without entry ``s`` at ``c`` and with entries ``< s``, so an entry
   at index ``i >= s`` dated more than :data:`BRACKET_TOLERANCE_MS` before the latest such
   ``c``, or an entry at ``i < s`` dated more than that after the earliest ``c`` of the
   first checkpoint past it, is ``out_of_bracket`` (the server accepts records only
   within minutes of its clock; the tolerance is wide, for clocks that disagree).

The replay finishes step 2 too: each draft and receipt whose signature a worker verified
(:mod:`client.auditor.chunks`) is applied with that key as ``verified_key``; the ledger
skips its own Ed25519 check only if the key is exactly the roster's key for the signing
device at that index, and checks everything else itself.  Every roster and channel
change is verified here, in the main process (:meth:`protocol.roster.Roster.apply`).

An entry that fails to parse or to apply becomes an :class:`~client.auditor.report.Alarm`
and the ledger steps past it (:meth:`~protocol.ledger.Ledger.skip_entry`), so the replay
goes on and one report lists every problem.
"""

from __future__ import annotations

from array import array

from client.auditor.checkpoints import _Checkpoints
from client.auditor.chunks import _Check, _Parsed, _Verified
from client.auditor.report import BACKDATED, ENTRY_KINDS, OUT_OF_BRACKET, Alarm
from protocol import merkle
from protocol.envelope import DraftHeader
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.keys import DeviceId
from protocol.ledger import Act, Entry, Ledger
from protocol.merkle import leaf_hash
from protocol.negotiation import check_tree_claim
from protocol.receipt import Receipt
from protocol.roster import RosterChange

BACKDATE_TOLERANCE_MS = 60 * 60 * 1000
"""How far an entry may be dated before one logged earlier (clock skew the server
allows on both records, with a wide margin)."""

BRACKET_TOLERANCE_MS = BACKDATE_TOLERANCE_MS
"""How far an entry's time may lie outside the cosignature times of the checkpoints that
bracket it (the same wide margin)."""


class _Replay:
    """The main-process side of one audit run: the ledger replayed entry by entry, the
    device keys learnt for the workers, the counts, and the checkpoint roots
    (:class:`client.auditor.checkpoints._Checkpoints`) folded in chunk by chunk."""

    def __init__(self, genesis: Genesis, checkpoints: _Checkpoints) -> None:
        self.ledger = Ledger(genesis)
        self.alarms = checkpoints.alarms
        self.counts = dict.fromkeys(ENTRY_KINDS, 0)
        self.counts["genesis"] = 1
        self.device_member: dict[DeviceId, str] = {
            genesis.mediator_device.device_id: genesis.mediator
        }
        self.keys: dict[DeviceId, bytes] = {
            genesis.mediator_device.device_id: genesis.mediator_device.sign_pk
        }
        # The latest time among the entries so far, and the entry that carries it.
        self.latest_time = genesis.time
        self.latest_index = 0
        self.checkpoints = checkpoints
        # Brackets: the latest cosignature time (ms) of a checkpoint no larger than the
        # current index, and the entries (index, time) since the last checkpoint size.
        self.floor_ms = 0
        self.floor_size = 0
        self.since_index: array[int] = array("q")
        self.since_time: array[int] = array("q")
        # Per device, the indices of the receipts it signed: a later revocation flags
        # those from its declared compromise on (client.auditor.lifecycle).
        self.receipts_by: dict[DeviceId, array[int]] = {}

    def absorb(
        self,
        start: int,
        parsed: list[_Parsed],
        checks: list[_Check],
        verified: _Verified,
        chunk_size: int,
    ) -> None:
        """Replay one chunk through the ledger, in log order, and fold in its roots."""
        apply_entry = self.ledger.apply_entry
        checkpoints = self.checkpoints
        by_size = checkpoints.by_size
        positions = verified.positions
        keys = {start + c[0]: c[1] for c in checks if c[0] in positions}  # by log index
        key_of = keys.get
        receipts = drafts = 0
        receipts_by = self.receipts_by
        # _check_time inline (it reads these back from self when called)
        latest, latest_index = self.latest_time, self.latest_index
        since_index, since_time = self.since_index.append, self.since_time.append
        for index, entry in enumerate(parsed, start):
            if index in by_size:
                checkpoints.evaluate(index, self.ledger.roster)
                self.bracket(index)
            if index == 0:
                continue  # the genesis, already verified against the pin
            if isinstance(entry, tuple):
                self._entry_alarm(index, *entry)
                continue
            try:
                if type(entry) is Act and entry.kind == "round.close":
                    self._check_round_root(start, parsed, index, entry)
                apply_entry(entry, verified_key=key_of(index))
            except ProtocolError as exc:
                self._entry_alarm(index, exc.code, exc.detail)
                continue
            # _count, inline for the two hot record types.
            kind = type(entry)
            if kind is Receipt:
                receipts += 1
                signer = entry.device  # type: ignore[union-attr]
                signed = receipts_by.get(signer)
                if signed is None:
                    signed = receipts_by[signer] = array("Q")
                signed.append(index)
            elif kind is DraftHeader:
                drafts += 1
            else:
                self._count(entry)
            when = entry.time
            since_index(index)
            since_time(when)
            if when < self.floor_ms - BRACKET_TOLERANCE_MS:
                self._out_of_bracket(index, when, early=True)
            if when > latest:
                latest, latest_index = when, index
            elif when < latest - BACKDATE_TOLERANCE_MS:
                self.latest_time, self.latest_index = latest, latest_index
                self._check_time(index, when)
                latest, latest_index = self.latest_time, self.latest_index
        self.latest_time, self.latest_index = latest, latest_index
        self.counts["receipt"] += receipts
        self.counts["draft"] += drafts
        checkpoints.fold(start, len(parsed), verified.roots, chunk_size)

    def bracket(self, size: int) -> None:
        """A checkpoint of ``size`` (already evaluated) closes the bracket of the entries
        since the previous one and opens the next; call it once per size, in order, and
        for the log's own size at the end."""
        times = self.checkpoints.cosigned_at(size)
        if not times:
            return
        upper = min(times) * 1000 + BRACKET_TOLERANCE_MS
        for i, when in zip(self.since_index, self.since_time, strict=True):
            if when > upper:
                self._out_of_bracket(i, when, early=False, size=size, at=min(times))
        # In place: the replay loop holds the arrays' append methods.
        del self.since_index[:]
        del self.since_time[:]
        if max(times) * 1000 > self.floor_ms:
            self.floor_ms, self.floor_size = max(times) * 1000, size

    def _out_of_bracket(
        self, index: int, when: int, *, early: bool, size: int = 0, at: int = 0
    ) -> None:
        if early:
            minutes = (self.floor_ms - when) // 60_000
            why = (
                f"dated {minutes} min before the witnesses cosigned the checkpoint of size "
                f"{self.floor_size}, which did not hold it yet"
            )
        else:
            minutes = (when - at * 1000) // 60_000
            why = (
                f"dated {minutes} min after the witnesses cosigned the checkpoint of size "
                f"{size}, which already held it"
            )
        self.alarms.append(Alarm(code=OUT_OF_BRACKET, reason=why, index=index))

    def _check_round_root(self, start: int, parsed: list[_Parsed], index: int, act: Act) -> None:
        """A round record's root must be the log's root just before it (rare: the root
        of the chunk's prefix is computed here, on top of the chunks already folded)."""
        frontier = merkle.Frontier()
        for earlier in parsed[: index - start]:
            if isinstance(earlier, tuple):
                return  # an entry that did not parse: already an alarm of its own
            frontier.append(leaf_hash(earlier.to_bytes()))
        root = self.checkpoints.edge.root_with(frontier.root() if frontier.size else None)
        check_tree_claim(act, index, lambda _size: root)

    def _entry_alarm(self, index: int, code: str, detail: str) -> None:
        self.alarms.append(Alarm(code=code, reason=detail, index=index))
        self.counts["invalid"] += 1
        self.ledger.skip_entry()

    def _check_time(self, index: int, when: int) -> None:
        """Step 3, times: flag an entry dated long before one logged earlier."""
        if when < self.latest_time - BACKDATE_TOLERANCE_MS:
            minutes = (self.latest_time - when) // 60_000
            self.alarms.append(
                Alarm(
                    code=BACKDATED,
                    reason=f"dated {minutes} min before entry {self.latest_index}, which the "
                    "log holds earlier",
                    index=index,
                )
            )
        elif when > self.latest_time:
            self.latest_time, self.latest_index = when, index

    def _count(self, entry: Entry) -> None:
        if isinstance(entry, RosterChange):
            self.counts[entry.record_type] += 1
            for device in entry.args.devices:
                self.device_member[device.device_id] = entry.args.member or ""
        elif isinstance(entry, Receipt):
            self.counts["receipt"] += 1
        elif isinstance(entry, Act):
            self.counts["act"] += 1
        else:
            self.counts["draft"] += 1
