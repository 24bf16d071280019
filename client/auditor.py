"""The auditor: verify a whole Docket log from outside and report on it.

Theory of operation
-------------------
An auditor holds nothing but the pinned talks id, the log entries and the checkpoint
notes the server (and its witnesses) signed.  It never sees plaintext.  This module is
pure: no network, files or clock (the CLI fetches and feeds it), so the same bytes
always give the same :class:`AuditReport`.

:func:`audit_log` checks, for the whole log:

1. **Trust root.**  Entry 0 parses as a genesis signed by its mediator and its leaf hash
   equals the pinned talks id.  Without it nothing else can be checked: the audit stops.
2. **Signatures.**  Every draft and receipt signature verifies under its device's key
   (:func:`protocol.ledger.signature_verifies`, in worker processes); every roster and
   channel change verifies in the main process (:meth:`protocol.roster.Roster.apply`).
3. **Rules.**  Every entry replays through :class:`protocol.ledger.Ledger`, the machine
   the server and the clients run: authority against the roster in force at that index,
   roster chaining, per-sender counters, duplicate message ids and receipts, lineage,
   recipient sets equal to the channel's devices, receipt binding.  Times: the server
   logs entries in order and accepts a record only within minutes of its own clock, so
   a valid entry dated more than :data:`BACKDATE_TOLERANCE_MS` before an entry logged
   earlier is ``backdated`` (signatures cannot show it: a colluding sender and server
   can date a record at will; the alarm names the earlier entry, since either may be
   the one whose date is false).
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

The audit does not stop at the first bad entry.  An entry that fails to parse or to
apply becomes an :class:`Alarm` ``{index, code, reason}`` (the code is the
:class:`~protocol.errors.ProtocolError` code the server would have answered), the ledger
steps past it (:meth:`~protocol.ledger.Ledger.skip_entry`) and the replay goes on, so one
report lists every problem.  Invalid entries still count in the Merkle tree: the root is
over the bytes the log holds.  :attr:`AuditReport.ok` is true only without alarms.

Parallel verification
---------------------
Ed25519 verification is most of the work, so it is spread over ``workers`` processes:
the main process and ``workers - 1`` pool processes.

* the log is cut into chunks of ``chunk_size`` entries (a power of two) aligned on
  multiples of it;
* the main process parses each chunk strictly, once (drafts and receipts through
  :func:`protocol.hotparse.parse_hot`, which yields exactly what the general parser
  would or defers to it), and learns device keys from the roster changes it meets,
  valid or not (device id -> Ed25519 key).  A device id is a
  SHA-256 commitment to both public keys, so an id can only ever name that one key; the
  map decides nothing, it only lets workers verify early;
* a worker receives the chunk's raw bytes (or, when it was forked with the caller's
  list of entries, only where the chunk starts in it) and, for every draft and receipt
  whose device is in the map, its position, that key, the signature and, when the fast
  parser matched the record, where the ``sig`` member sits in the bytes (so the signed
  bytes are cut out by position, not searched for); it checks the signatures, hashes
  the leaves and returns the positions that verified, the chunk's Merkle subtree root
  and the partial roots at any checkpoint size inside it (a compact answer: positions
  and hashes, never objects).  Meanwhile the main process parses the next chunks (at
  most ``2 * workers`` are in flight), and verifies a chunk itself, with the same
  function, whenever the pool already has two chunks per process waiting;
* the main process replays the ledger in log order, passing each verified key as
  ``verified_key``: the ledger skips its own Ed25519 check only if that key is exactly
  the roster's key for the signing device at that index, and checks everything else
  itself.  Roots at any size come from the full-chunk roots (a frontier of perfect
  subtrees at the chunk level) folded with one partial root.

With ``workers=1`` the same functions run in-process, so both paths share every line
that decides validity, and their reports are identical.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import multiprocessing
import os
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter

from protocol import checkpoint as cpt
from protocol import crypto, merkle
from protocol.crypto import CTX_DRAFT, CTX_RECEIPT
from protocol.encoding import Fields, JSONValue, b64e, canonical, parse
from protocol.envelope import DraftHeader
from protocol.errors import (
    BadValueError,
    MalformedError,
    ProtocolError,
    QuorumError,
    TooLargeError,
)
from protocol.evidence import require_trusted
from protocol.genesis import ORIGIN_RE, Genesis
from protocol.hotparse import SIG_MEMBER_HEAD, SIG_MEMBER_TAIL, parse_hot_signed
from protocol.keys import DeviceId
from protocol.ledger import (
    DraftState,
    Entry,
    Ledger,
    parse_entry,
    raw_signature_verifies,
    signature_claim,
)
from protocol.merkle import EMPTY_ROOT, HASH_LEN
from protocol.receipt import ACKNOWLEDGED, RECEIPT_KINDS, RECEIVED, REJECTED, Receipt
from protocol.roster import Roster, RosterChange

DEFAULT_CHUNK = 2048
STATE_VERSION = 1

ENTRY_KINDS = ("genesis", "roster", "channel", "draft", "receipt", "invalid")

# Audit-level alarm codes (entry alarms carry the ledger's ProtocolError codes).
EMPTY_LOG = "empty_log"
ROOT_MISMATCH = "root_mismatch"
LOG_TRUNCATED = "log_truncated"
NO_QUORUM = QuorumError.code
ROLLBACK = "rollback"
FORK = "fork"
BAD_CHECKPOINT = "bad_checkpoint"
NO_CHECKPOINT = "no_checkpoint"
WRONG_TALKS = "wrong_talks"
BACKDATED = "backdated"

BACKDATE_TOLERANCE_MS = 60 * 60 * 1000
"""How far an entry may be dated before one logged earlier (clock skew the server
allows on both records, with a wide margin)."""

Progress = Callable[[int, int], None]
"""``progress(entries_done, entries_total)``; the total is 0 when not known in advance."""


# --- persisted state ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditState:
    """What an auditor keeps between audits: the size and root of the log it verified."""

    talks: bytes
    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if len(self.talks) != HASH_LEN or len(self.root) != HASH_LEN:
            raise BadValueError("audit state: talks and root must be 32 bytes")
        if not ORIGIN_RE.fullmatch(self.origin):
            raise BadValueError("audit state: invalid origin")
        if not 0 <= self.size <= merkle.MAX_TREE_SIZE:
            raise BadValueError("audit state: size out of range")

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "origin": self.origin,
            "root": b64e(self.root),
            "size": self.size,
            "t": "audit-state",
            "talks": b64e(self.talks),
            "v": STATE_VERSION,
        }

    @classmethod
    def from_json(cls, value: JSONValue) -> AuditState:
        f = Fields(value, "audit state")
        f.literal("t", "audit-state")
        f.literal("v", STATE_VERSION)
        state = cls(
            talks=f.bytes("talks", length=HASH_LEN),
            origin=f.str("origin", max_len=200),
            size=f.int("size"),
            root=f.bytes("root", length=HASH_LEN),
        )
        f.done()
        return state

    def to_bytes(self) -> bytes:
        """Canonical JSON, for the CLI to store."""
        return canonical(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditState:
        return cls.from_json(parse(data))


# --- report --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Alarm:
    """One problem: ``index`` names the log entry at fault, ``size`` the checkpoint or
    earlier audit it concerns (either may be ``None``)."""

    code: str
    reason: str
    index: int | None = None
    size: int | None = None

    def to_json(self) -> dict[str, JSONValue]:
        return {"code": self.code, "index": self.index, "reason": self.reason, "size": self.size}


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """A draft that some recipient members have not answered with a receipt of ``kind``
    (for ``received``, a ``rejected`` receipt counts as an answer).  A member counts as
    having answered when any of its recipient devices did; the sender's member is never
    waited for."""

    index: int
    channel: str
    sender: str
    kind: str
    missing: tuple[str, ...]
    missing_devices: tuple[DeviceId, ...]

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "channel": self.channel,
            "index": self.index,
            "kind": self.kind,
            "missing": list(self.missing),
            "missing_devices": [b64e(d) for d in self.missing_devices],
            "sender": self.sender,
        }


def _kind_counts() -> dict[str, int]:
    return dict.fromkeys(RECEIPT_KINDS, 0)


@dataclass(slots=True, kw_only=True)
class ChannelReport:
    """Drafts logged in a channel, the receipts they received, and how many still wait."""

    channel: str
    kind: str
    drafts: int = 0
    receipts: dict[str, int] = field(default_factory=_kind_counts)
    unreceived: int = 0
    unacknowledged: int = 0

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "channel": self.channel,
            "drafts": self.drafts,
            "kind": self.kind,
            "receipts": dict(self.receipts),
            "unacknowledged": self.unacknowledged,
            "unreceived": self.unreceived,
        }


@dataclass(slots=True, kw_only=True)
class DelegationReport:
    """Drafts sent and receipts signed by a delegation's members, and the drafts still
    waiting for any of its members' receipt or acknowledgement."""

    delegation: str
    name: str
    head: str
    members: int = 0
    drafts: int = 0
    receipts: dict[str, int] = field(default_factory=_kind_counts)
    unreceived: int = 0
    unacknowledged: int = 0

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "delegation": self.delegation,
            "drafts": self.drafts,
            "head": self.head,
            "members": self.members,
            "name": self.name,
            "receipts": dict(self.receipts),
            "unacknowledged": self.unacknowledged,
            "unreceived": self.unreceived,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointReport:
    """One checkpoint note as verified: ``matches`` is None when the log is too short to
    tell; ``trusted`` means it carries the witness quorum of the roster at its size."""

    size: int
    root: bytes
    matches: bool | None
    trusted: bool
    cosigners: tuple[str, ...]

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "cosigners": list(self.cosigners),
            "matches": self.matches,
            "root": b64e(self.root),
            "size": self.size,
            "trusted": self.trusted,
        }


@dataclass(slots=True, kw_only=True)
class AuditReport:
    """Everything the audit found.  :attr:`ok` only if there is no alarm at all."""

    talks: bytes
    fingerprint: str
    origin: str
    title: str
    size: int
    root: bytes
    entries: dict[str, int]
    checkpoints: list[CheckpointReport]
    unquorate: int
    channels: list[ChannelReport]
    delegations: list[DelegationReport]
    unreceived: list[Pending]
    unacknowledged: list[Pending]
    alarms: list[Alarm]
    state: AuditState | None

    @property
    def ok(self) -> bool:
        return not self.alarms

    @property
    def latest_checkpoint(self) -> CheckpointReport | None:
        return max(self.checkpoints, key=lambda c: c.size, default=None)

    def to_json(self) -> dict[str, JSONValue]:
        """The report as JSON values (``docket audit --json``)."""
        return {
            "alarms": [a.to_json() for a in self.alarms],
            "channels": [c.to_json() for c in self.channels],
            "checkpoints": [c.to_json() for c in self.checkpoints],
            "delegations": [d.to_json() for d in self.delegations],
            "entries": dict(self.entries),
            "fingerprint": self.fingerprint,
            "ok": self.ok,
            "origin": self.origin,
            "root": b64e(self.root),
            "size": self.size,
            "state": None if self.state is None else self.state.to_json(),
            "talks": b64e(self.talks),
            "title": self.title,
            "unacknowledged": [p.to_json() for p in self.unacknowledged],
            "unquorate": self.unquorate,
            "unreceived": [p.to_json() for p in self.unreceived],
        }

    def render_text(self, *, limit: int = 20) -> str:
        """A human report; lists longer than ``limit`` lines are cut with a count."""
        out: list[str] = []
        verdict = "OK" if self.ok else f"FAILED: {len(self.alarms)} alarm(s)"
        out.append(f"Audit of {self.title!r} ({self.origin}): {verdict}")
        out.append(f"  talks fingerprint  {self.fingerprint}")
        out.append(f"  log                {self.size} entries, root {b64e(self.root)}")
        kinds = ", ".join(f"{k} {n}" for k, n in self.entries.items() if n)
        out.append(f"  entries            {kinds}")
        latest = self.latest_checkpoint
        if latest is None:
            out.append("  checkpoints        none verified")
        else:
            trust = "trusted" if latest.trusted else "NOT trusted (no quorum)"
            out.append(
                f"  checkpoints        {len(self.checkpoints)} verified, latest size "
                f"{latest.size} {trust}; cosigned by {', '.join(latest.cosigners) or 'nobody'}"
            )
            if self.unquorate:
                out.append(f"                     {self.unquorate} without witness quorum")
        if self.alarms:
            out.append("")
            out.append("Alarms")
            out.extend(_cut([_alarm_line(a) for a in self.alarms], limit))
        out.append("")
        out.append("Channels")
        for c in self.channels:
            out.append(
                f"  {c.channel:<24} {c.kind:<14} drafts {c.drafts:>6}  {_receipt_text(c.receipts)}"
                f"  unreceived {c.unreceived}  unacknowledged {c.unacknowledged}"
            )
        out.append("")
        out.append("Delegations")
        for d in self.delegations:
            out.append(
                f"  {d.delegation:<24} head {d.head:<12} members {d.members:>3}  drafts "
                f"{d.drafts:>6}  {_receipt_text(d.receipts)}  awaiting receipt "
                f"{d.unreceived}  awaiting acknowledgement {d.unacknowledged}"
            )
        for title, pending in (
            ("Drafts not yet received", self.unreceived),
            ("Drafts not yet acknowledged", self.unacknowledged),
        ):
            out.append("")
            out.append(f"{title} ({len(pending)})")
            out.extend(_cut([_pending_line(p) for p in pending], limit))
        return "\n".join(out) + "\n"


def _receipt_text(counts: Mapping[str, int]) -> str:
    return " ".join(f"{k} {counts[k]:>6}" for k in RECEIPT_KINDS)


def _alarm_line(a: Alarm) -> str:
    where = []
    if a.index is not None:
        where.append(f"entry {a.index}")
    if a.size is not None:
        where.append(f"size {a.size}")
    return f"  [{a.code}] {', '.join(where) or 'log'}: {a.reason}"


def _pending_line(p: Pending) -> str:
    return f"  #{p.index:<8} {p.channel:<24} from {p.sender:<16} missing {', '.join(p.missing)}"


def _cut(lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"  ... and {len(lines) - limit} more"]


# --- Merkle roots at chunk granularity ---------------------------------------------------


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


# --- parsing (main process) and verifying (workers) -----------------------------------

# One entry as parsed: the entry or, if its bytes do not parse, (code, detail).
_Parsed = Entry | tuple[str, str]
# A signature to check: (position in the chunk, public key, context, signature, offset
# of the signature's text in the entry's bytes, or 0 if the fast parser did not say).
_Check = tuple[int, bytes, bytes, bytes, int]


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a worker returns for one chunk."""

    positions: frozenset[int]
    """Positions whose signature verified under the key sent with them."""
    roots: dict[int, bytes]
    """Chunk-relative width -> Merkle root of the chunk's first ``width`` leaves (always
    including the chunk's whole length)."""


def _parse_chunk(
    entries: list[bytes], keys: dict[DeviceId, bytes]
) -> tuple[list[_Parsed], list[_Check]]:
    """Parse a chunk strictly (main process) and list the signatures workers can check.

    Keys enrolled by any roster change that parses, even one the ledger will refuse, are
    added to ``keys`` as they are met, so an entry can be pre-verified whenever its
    device appeared earlier in the log.  That decides nothing: the ledger still requires
    the roster's key for the device at that index, and a device id commits to its keys.
    """
    parsed: list[_Parsed] = []
    checks: list[_Check] = []
    add, check, key_of, hot_signed = parsed.append, checks.append, keys.get, parse_hot_signed
    for position, raw in enumerate(entries):
        # The hot records through the fast parser, which returns exactly what
        # parse_entry would (and where the signature sits), or None when unsure: then
        # parse_entry decides.
        hot = hot_signed(raw)
        if hot is not None:
            record, offset = hot
            add(record)
            if isinstance(record, Receipt):
                key = key_of(record.device)
                context = CTX_RECEIPT
            else:
                key = key_of(record.sender)
                context = CTX_DRAFT
            if key is not None:
                check((position, key, context, record.sig, offset))
            continue
        try:
            entry = parse_entry(raw)
        except ProtocolError as exc:
            add((exc.code, exc.detail))
            continue
        add(entry)
        claim = signature_claim(entry)
        if claim is not None:
            key = keys.get(claim[0])
            if key is not None:
                checks.append((position, key, claim[1], entry.sig, 0))
        elif isinstance(entry, RosterChange):
            for device in entry.args.devices:
                keys[device.device_id] = device.sign_pk
        elif isinstance(entry, Genesis):
            keys[entry.mediator_device.device_id] = entry.mediator_device.sign_pk
    return parsed, checks


def _cut_verifies(key: bytes, context: bytes, raw: bytes, sig: bytes, offset: int) -> bool:
    """:func:`~protocol.ledger.raw_signature_verifies` where the fast parser has located
    the ``sig`` member (:func:`protocol.hotparse.parse_hot_signed`): the signed bytes are
    ``raw`` without it, cut out by position rather than found by searching."""
    message = raw[: offset - SIG_MEMBER_HEAD] + raw[offset + SIG_MEMBER_TAIL :]
    try:
        crypto.verify(key, context, message, sig)
    except ProtocolError:
        return False
    return True


def _verify_chunk(
    entries: Sequence[bytes], checks: list[_Check], cuts: tuple[int, ...]
) -> _Verified:
    """Check signatures and hash leaves for one chunk (in a worker, or in-process)."""
    positions = frozenset(
        position
        for position, key, context, sig, offset in checks
        if (
            _cut_verifies(key, context, entries[position], sig, offset)
            if offset
            else raw_signature_verifies(key, context, entries[position], sig)
        )
    )
    if not cuts and len(entries) & (len(entries) - 1) == 0:
        # A full chunk without checkpoint inside (nearly all): a perfect subtree,
        # hashed level by level, without the frontier's bookkeeping per leaf, and with
        # RFC 9162's leaf and node hashes (merkle.leaf_hash, merkle.node_hash) inline.
        sha256 = hashlib.sha256
        level = [sha256(b"\x00" + raw).digest() for raw in entries]
        while len(level) > 1:
            level = [
                sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)
            ]
        return _Verified(positions=positions, roots={len(entries): level[0]})
    leaves = [merkle.leaf_hash(raw) for raw in entries]
    frontier = merkle.Frontier()
    wanted = set(cuts)
    roots: dict[int, bytes] = {}
    for leaf in leaves:
        frontier.append(leaf)
        if frontier.size in wanted:
            roots[frontier.size] = frontier.root()
    roots[frontier.size] = frontier.root()
    return _Verified(positions=positions, roots=roots)


# --- the audit -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Opened:
    """A checkpoint note whose log signature verified."""

    checkpoint: cpt.Checkpoint
    note: cpt.SignedNote
    trusted: bool = False
    cosigners: tuple[str, ...] = ()
    needed: int = 0
    evaluated: bool = False

    def evaluate(self, roster: Roster) -> None:
        """Check the witness quorum once, with the roster in force at this checkpoint."""
        if self.evaluated:
            return
        self.evaluated = True
        self.needed = roster.quorum()
        try:
            self.cosigners = require_trusted(self.checkpoint, self.note, roster)
            self.trusted = True
        except ProtocolError:
            self.trusted = False


class _Audit:
    """The main-process side of one audit run."""

    def __init__(
        self,
        genesis: Genesis,
        opened: list[_Opened],
        previous: AuditState | None,
        alarms: list[Alarm],
    ) -> None:
        self.genesis = genesis
        self.ledger = Ledger(genesis)
        self.opened = opened
        self.previous = previous
        self.alarms = alarms
        self.counts = dict.fromkeys(ENTRY_KINDS, 0)
        self.counts["genesis"] = 1
        self.device_member: dict[DeviceId, str] = {
            genesis.mediator_device.device_id: genesis.mediator
        }
        self.keys: dict[DeviceId, bytes] = {
            genesis.mediator_device.device_id: genesis.mediator_device.sign_pk
        }
        self.edge = _ChunkEdge()
        # The latest time among the entries so far, and the entry that carries it.
        self.latest_time = genesis.time
        self.latest_index = 0
        self.roots: dict[int, bytes] = {0: EMPTY_ROOT}
        self.by_size: dict[int, list[_Opened]] = {}
        for item in opened:
            self.by_size.setdefault(item.checkpoint.size, []).append(item)
        self.cuts = set(self.by_size)
        if previous is not None:
            self.cuts.add(previous.size)

    def cuts_in(self, start: int, length: int) -> tuple[int, ...]:
        return tuple(sorted(s - start for s in self.cuts if start < s <= start + length))

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
        by_size = self.by_size
        positions = verified.positions
        keys = {start + c[0]: c[1] for c in checks if c[0] in positions}  # by log index
        key_of = keys.get
        receipts = drafts = 0
        # _check_time inline (it reads these back from self when called)
        latest, latest_index = self.latest_time, self.latest_index
        for index, entry in enumerate(parsed, start):
            if index in by_size:
                self._evaluate(index)
            if index == 0:
                continue  # the genesis, already verified against the pin
            if isinstance(entry, tuple):
                self._entry_alarm(index, *entry)
                continue
            try:
                apply_entry(entry, verified_key=key_of(index))
            except ProtocolError as exc:
                self._entry_alarm(index, exc.code, exc.detail)
                continue
            # _count, inline for the two hot record types.
            kind = type(entry)
            if kind is Receipt:
                receipts += 1
            elif kind is DraftHeader:
                drafts += 1
            else:
                self._count(entry)
            when = entry.time
            if when > latest:
                latest, latest_index = when, index
            elif when < latest - BACKDATE_TOLERANCE_MS:
                self.latest_time, self.latest_index = latest, latest_index
                self._check_time(index, when)
                latest, latest_index = self.latest_time, self.latest_index
        self.latest_time, self.latest_index = latest, latest_index
        self.counts["receipt"] += receipts
        self.counts["draft"] += drafts
        index = start + len(parsed)
        for width, node in verified.roots.items():
            if width < chunk_size:
                self.roots[start + width] = self.edge.root_with(node)
        if len(parsed) == chunk_size:
            self.edge.append(chunk_size.bit_length() - 1, verified.roots[chunk_size])
            self.roots[index] = self.edge.root_with(None)

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
        else:
            self.counts["draft"] += 1

    def _evaluate(self, size: int) -> None:
        """Quorum of the checkpoints at ``size``, with the roster after ``size`` entries."""
        for item in self.by_size.get(size, ()):
            item.evaluate(self.ledger.roster)

    def finish(self, size: int) -> tuple[bytes, list[CheckpointReport], int]:
        """Steps 4 and 5 once every entry is in: roots, quorum, previous state."""
        self._evaluate(size)
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
                    item.evaluate(self.ledger.roster)
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

    def summarise(
        self,
    ) -> tuple[list[ChannelReport], list[DelegationReport], list[Pending], list[Pending]]:
        roster = self.ledger.roster
        member_of = self.device_member
        for member in roster.members.values():
            for dev_id in member.devices:
                member_of[dev_id] = member.id

        member_delegation = {m.id: m.delegation for m in roster.members.values()}
        delegation_of = member_delegation.get  # None for no such member

        channels = {
            c.id: ChannelReport(channel=c.id, kind=c.kind) for c in roster.channels.values()
        }
        delegations = {
            d.id: DelegationReport(delegation=d.id, name=d.name, head=d.head)
            for d in roster.delegations.values()
        }
        for member in roster.members.values():
            if member.active and member.delegation in delegations:
                delegations[member.delegation].members += 1
        unreceived: list[Pending] = []
        unacknowledged: list[Pending] = []
        groups: dict[tuple[DeviceId, ...], list[tuple[str, frozenset[DeviceId]]]] = {}
        shapes: dict[_Missing, tuple[tuple[str, ...], tuple[DeviceId, ...]]] = {}
        waiting_on: dict[tuple[str, ...], set[str | None]] = {}
        states = sorted(self.ledger.drafts.values(), key=lambda s: s.index)
        for state in states:
            header = state.header
            channel = channels[header.channel]
            channel.drafts += 1
            sender_delegation = delegation_of(state.sender_member)
            if sender_delegation is not None:
                delegations[sender_delegation].drafts += 1
            counts = channel.receipts
            counts[RECEIVED] += len(state.received)
            counts[ACKNOWLEDGED] += len(state.acknowledged)
            counts[REJECTED] += len(state.rejected)
            group = groups.get(header.recipients)
            if group is None:
                by_member: dict[str, set[DeviceId]] = {}
                for dev_id in header.recipients:
                    by_member.setdefault(member_of.get(dev_id, "?"), set()).add(dev_id)
                group = groups[header.recipients] = [
                    (m, frozenset(devs)) for m, devs in sorted(by_member.items())
                ]
            for kind, out in ((RECEIVED, unreceived), (ACKNOWLEDGED, unacknowledged)):
                pending = _pending(state, group, kind, shapes)
                if pending is None:
                    continue
                out.append(pending)
                if kind == RECEIVED:
                    channel.unreceived += 1
                else:
                    channel.unacknowledged += 1
                affected = waiting_on.get(pending.missing)
                if affected is None:
                    affected = waiting_on[pending.missing] = {
                        delegation_of(m) for m in pending.missing
                    }
                for d in affected:
                    if d is None:
                        continue
                    if kind == RECEIVED:
                        delegations[d].unreceived += 1
                    else:
                        delegations[d].unacknowledged += 1
        # Receipts by delegation: counted per device over every draft, then credited.
        for kind, of_kind in (
            (RECEIVED, attrgetter("received")),
            (ACKNOWLEDGED, attrgetter("acknowledged")),
            (REJECTED, attrgetter("rejected")),
        ):
            by_device = Counter(itertools.chain.from_iterable(map(of_kind, states)))
            for dev_id, n in by_device.items():
                d = delegation_of(member_of.get(dev_id, ""))
                if d is not None:
                    delegations[d].receipts[kind] += n
        return (
            [channels[k] for k in sorted(channels)],
            [delegations[k] for k in sorted(delegations)],
            unreceived,
            unacknowledged,
        )


_Missing = tuple[tuple[str, frozenset[DeviceId]], ...]


def _pending(
    state: DraftState,
    group: list[tuple[str, frozenset[DeviceId]]],
    kind: str,
    shapes: dict[_Missing, tuple[tuple[str, ...], tuple[DeviceId, ...]]],
) -> Pending | None:
    """The :class:`Pending` for ``state`` and ``kind``, if any member is missing.
    ``shapes`` memoises the members' names and sorted devices per set of missing members
    (drafts of one channel mostly miss the same ones)."""
    sender = state.sender_member
    if kind == RECEIVED:
        received, rejected = state.received, state.rejected
        missing = tuple(
            [
                (m, devs)
                for m, devs in group
                if m != sender and devs.isdisjoint(received) and devs.isdisjoint(rejected)
            ]
        )
    else:
        acknowledged = state.acknowledged
        missing = tuple(
            [(m, devs) for m, devs in group if m != sender and devs.isdisjoint(acknowledged)]
        )
    if not missing:
        return None
    shape = shapes.get(missing)
    if shape is None:
        shape = shapes[missing] = (
            tuple(m for m, _ in missing),
            tuple(sorted(d for _, devs in missing for d in devs)),
        )
    return Pending(
        index=state.index,
        channel=state.header.channel,
        sender=sender,
        kind=kind,
        missing=shape[0],
        missing_devices=shape[1],
    )


def _chunks(entries: Iterable[bytes], size: int) -> Iterator[tuple[int, list[bytes]]]:
    it = iter(entries)
    start = 0
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield start, chunk
        start += len(chunk)


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
) -> AuditReport:
    """Verify a whole log (steps 1-5 of the module docstring) and summarise it.

    ``entries`` are the raw log entries from index 0, in order (any iterable: it is read
    once, chunk by chunk).  ``checkpoints`` are C2SP checkpoint notes with whatever
    cosignatures were collected (at least the latest).  ``previous`` is the
    :attr:`AuditReport.state` of an earlier audit of the same talks.  ``workers`` is the
    number of verifying processes (default: every CPU; 1 verifies in this process).
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
    opened: list[_Opened] = []
    for note in checkpoints:
        try:
            checkpoint, signed = cpt.open_checkpoint(
                note, origin=genesis.origin, log_name=genesis.log_name, log_key=genesis.log_key
            )
        except ProtocolError as exc:
            alarms.append(Alarm(code=BAD_CHECKPOINT, reason=exc.detail))
            continue
        opened.append(_Opened(checkpoint=checkpoint, note=signed))

    # 2-3. Verify and replay every entry, chunk by chunk.
    audit = _Audit(genesis, opened, previous, alarms)
    done = 0
    # Exactly a list or tuple (no subclass with its own indexing): workers may read it.
    log = entries if isinstance(entries, list | tuple) and type(entries) in (list, tuple) else None
    for start, parsed, checks, verified in _pipeline(
        itertools.chain([first], chunks), audit, workers, log
    ):
        audit.absorb(start, parsed, checks, verified, chunk_size)
        done += len(parsed)
        if progress is not None:
            progress(done, total)

    # 4b-5. Roots, quorum, the previous audit; then the summary.
    root, reports, unquorate = audit.finish(done)
    channels, delegations, unreceived, unacknowledged = audit.summarise()
    alarms.sort(key=lambda a: (a.index is None, a.index or 0, a.size or 0, a.code))
    return AuditReport(
        talks=genesis.talks_id,
        fingerprint=genesis.fingerprint,
        origin=genesis.origin,
        title=genesis.title,
        size=done,
        root=root,
        entries=audit.counts,
        checkpoints=reports,
        unquorate=unquorate,
        channels=channels,
        delegations=delegations,
        unreceived=unreceived,
        unacknowledged=unacknowledged,
        alarms=alarms,
        state=AuditState(talks=genesis.talks_id, origin=genesis.origin, size=done, root=root),
    )


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` (fast to start) only while this process has a single thread: forking a
    threaded process can deadlock a child on a lock some other thread held.  Otherwise
    ``forkserver`` where the platform has it, else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


_Stage = tuple[int, list[_Parsed], list[_Check], _Verified]

_SHARED: Sequence[bytes] = ()
"""In a worker forked for one audit, the log it was forked with (see :func:`_pipeline`)."""


def _share(entries: Sequence[bytes]) -> None:
    """Worker initializer (``fork`` only: the list is inherited, not pickled)."""
    global _SHARED
    _SHARED = entries


def _verify_shared(
    start: int, length: int, checks: list[_Check], cuts: tuple[int, ...]
) -> _Verified:
    """:func:`_verify_chunk` on entries ``start .. start + length`` of the inherited log."""
    return _verify_chunk(_SHARED[start : start + length], checks, cuts)


def _pipeline(
    chunks: Iterator[tuple[int, list[bytes]]],
    audit: _Audit,
    workers: int,
    log: Sequence[bytes] | None = None,
) -> Iterator[_Stage]:
    """Parsed and verified chunks, in log order.

    ``workers`` processes verify: this one and ``workers - 1`` pool processes.  The main
    process parses each chunk and hands its signatures and leaves to the pool, unless
    the pool already has two chunks per process waiting: then it verifies that chunk
    itself (so no more processes run than ``workers``, none of them idle while there is
    work, and the chunks it keeps cost no pickling).  At most ``2 * workers`` chunks are
    in flight beyond the one being replayed.  With one worker everything runs in this
    process.

    ``log`` is the whole log when the caller gave a list: pool processes started by
    ``fork`` then read their chunks from the copy they inherited (only positions are
    sent), instead of receiving the bytes through a pipe.
    """
    if workers == 1:
        for start, chunk in chunks:
            parsed, checks = _parse_chunk(chunk, audit.keys)
            cuts = audit.cuts_in(start, len(chunk))
            yield start, parsed, checks, _verify_chunk(chunk, checks, cuts)
        return
    context = _pool_context()
    shared = False
    if log is not None and context.get_start_method() == "fork":
        shared = True
        pool = ProcessPoolExecutor(
            max_workers=workers - 1, mp_context=context, initializer=_share, initargs=(log,)
        )
    else:
        pool = ProcessPoolExecutor(max_workers=workers - 1, mp_context=context)
    with pool:
        inflight: deque[tuple[int, list[_Parsed], list[_Check], Future[_Verified] | _Verified]]
        inflight = deque()
        for start, chunk in chunks:
            parsed, checks = _parse_chunk(chunk, audit.keys)
            cuts = audit.cuts_in(start, len(chunk))
            waiting = sum(1 for *_, v in inflight if isinstance(v, Future) and not v.done())
            verified: Future[_Verified] | _Verified
            if waiting >= 2 * (workers - 1):
                verified = _verify_chunk(chunk, checks, cuts)
            elif shared:
                verified = pool.submit(_verify_shared, start, len(chunk), checks, cuts)
            else:
                verified = pool.submit(_verify_chunk, chunk, checks, cuts)
            inflight.append((start, parsed, checks, verified))
            while inflight and (
                len(inflight) > 2 * workers
                or not isinstance(inflight[0][3], Future)
                or inflight[0][3].done()
            ):
                yield _landed(inflight.popleft())
        while inflight:
            yield _landed(inflight.popleft())


def _landed(
    stage: tuple[int, list[_Parsed], list[_Check], Future[_Verified] | _Verified],
) -> _Stage:
    start, parsed, checks, verified = stage
    return start, parsed, checks, verified.result() if isinstance(verified, Future) else verified


# --- offline audit of an exported log ------------------------------------------------

EXPORT_MAX_LINE = 4 * 1024 * 1024


@dataclass(slots=True)
class ExportedLog:
    """A log read from ``docket-server export`` output, as stored (not yet judged)."""

    origin: str
    entries: list[bytes]
    checkpoints: list[bytes]
    alarms: list[Alarm]


def read_export(lines: Iterable[bytes]) -> ExportedLog:
    """Read a ``docket-server export`` file (JSON lines; see ``server/export.py``).

    Nothing here is trusted: an entry that is not an object is kept as its raw bytes (the
    audit then reports it at its index), and a missing index becomes an empty entry with
    a ``gap`` alarm, so every later entry keeps its position.  Raises
    :class:`~protocol.errors.ProtocolError` only if the file is not an export at all.
    """
    it = iter(lines)
    try:
        head = Fields(parse(next(it).rstrip(b"\n")), "export")
    except StopIteration:
        raise MalformedError("empty export file") from None
    head.literal("t", "docket-log")
    head.literal("v", 1)
    out = ExportedLog(origin=head.str("origin", max_len=200), entries=[], checkpoints=[], alarms=[])
    head.done()
    for number, raw in enumerate(it, start=2):
        line = raw.rstrip(b"\n")
        if not line:
            continue
        if len(line) > EXPORT_MAX_LINE:
            raise TooLargeError(f"export line {number} is too long")
        obj = parse(line, max_size=EXPORT_MAX_LINE)
        if isinstance(obj, dict) and "checkpoint" in obj:
            f = Fields(obj, "export.checkpoint")
            out.checkpoints.append(f.str("checkpoint", max_len=1 << 20).encode("utf-8"))
            f.done()
            continue
        f = Fields(obj, "export.entry")
        index = f.int("index")
        entry = f.raw("entry")
        f.done()
        while len(out.entries) < index:
            out.alarms.append(
                Alarm(
                    code="gap",
                    reason="the export has no entry at this index",
                    index=len(out.entries),
                )
            )
            out.entries.append(b"")
        if index < len(out.entries):
            raise MalformedError(f"export line {number}: entry {index} out of order")
        out.entries.append(
            canonical(entry) if isinstance(entry, dict) else str(entry).encode("utf-8")
        )
    return out
