"""The audit's results: alarm codes, the persisted :class:`AuditState`, and
:class:`AuditReport` with its parts, rendered as JSON (``docket audit --json``) or as text.

Entry alarms carry the ledger's :class:`~protocol.errors.ProtocolError` codes; the codes
below are the audit's own (see the steps in :mod:`client.auditor`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from client.auditor.lifecycle import LifecycleReport
from client.auditor.negotiation import render_lines
from protocol import merkle
from protocol.encoding import Fields, JSONValue, b64e, canonical, parse
from protocol.errors import BadValueError, QuorumError
from protocol.genesis import ORIGIN_RE
from protocol.keys import DeviceId
from protocol.merkle import HASH_LEN
from protocol.names import unsafe_characters
from protocol.receipt import RECEIPT_KINDS

STATE_VERSION = 1

ENTRY_KINDS = ("genesis", "roster", "channel", "draft", "receipt", "act", "invalid")

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
BROKEN_PROMISE = "broken_promise"
OUT_OF_BRACKET = "out_of_bracket"


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
        f.version(STATE_VERSION)
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
    lifecycle: LifecycleReport = field(default_factory=LifecycleReport)
    """Revocations, entries signed after a declared compromise, history grants."""
    negotiation: dict[str, JSONValue] = field(default_factory=dict)
    """Rounds, agreed texts, calls and non-papers (:mod:`client.auditor.negotiation`)."""

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
            "lifecycle": self.lifecycle.to_json(),
            "negotiation": self.negotiation,
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
        out.extend(self.lifecycle.lines())
        out.extend(render_lines(self.negotiation))
        # Names, titles and reasons come from the log's authors: no control, format or
        # bidi character reaches a terminal or a saved report raw.
        return "\n".join(escape_text(line) for line in out) + "\n"


def escape_text(text: str) -> str:
    """``text`` with every non-printable, control, format, bidi or invisible character
    written as ``\\u{XXXX}`` (visible, and unambiguous in a saved report)."""
    return "".join(
        f"\\u{{{ord(c):04X}}}" if not c.isprintable() or unsafe_characters(c) else c for c in text
    )


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
