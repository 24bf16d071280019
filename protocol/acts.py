"""Acts: signed statements by one participant that the ledger gives meaning to.

Theory of operation
-------------------
Drafts carry text and receipts prove delivery; everything else a participant does in
the talks (grant a new device the history of a channel, close a round, initial a text,
open a call for proposals, reveal a sealed proposal) is an *act*: one log entry

.. code-block:: text

    {"t": "act", "v": 1, "a": KIND, "talks": b64, "device": b64, "roster": b64,
     "time": ms, "body": {...}, "sig": b64}

signed with Ed25519 by the enrolled device ``device`` under the context
:data:`~protocol.crypto.CTX_ACT` over the canonical record without ``sig``.  The kind
``a`` is inside the signed bytes, so an act signed as one kind never verifies as
another; the context keeps acts apart from every other record type.

``roster`` is the roster head the signer saw when it signed, as for drafts: the ledger
refuses an act whose ``roster`` is not the head in force at its log position
(``stale_roster``), so nobody acts on a roster state that has since changed (a
removed head's authority, say) and the host cannot replay an act into a later state.
``time`` is the signer's clock, checked against the server's within the same skew as
roster changes; rules that need the log's own time use the promise times instead.

What a kind means lives in its *family* (:class:`ActFamily`): a module that names its
kinds, keeps a small state built from the acts it has applied, and decides whether
the next act of its kinds is valid (:meth:`ActFamily.check`) before the ledger applies
it (:meth:`ActFamily.apply`).  A family may also refuse a draft
(:meth:`ActFamily.check_draft`, e.g. a sealed proposal to a call already released).
The ledger verifies the envelope (talks, signer, signature, roster head) once, so a
family only ever sees authentic, current acts, and it sees them in log order.

Families are pure and deterministic: server, clients and auditor run the same family
code over the same log and so agree on every act.  A family keeps in its state only
what acts tell it, and looks drafts up through :class:`ActContext.drafts` at the time
it is asked, because a server restarting on its own disk replays roster changes and
acts but not drafts (see :meth:`protocol.ledger.Ledger.resume`).

Unknown kinds are refused when the entry is parsed (``bad_value``): a log can only
hold kinds this version of the protocol knows, so an old client never skips what it
cannot check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from protocol import crypto
from protocol.draftindex import LedgerIndex
from protocol.encoding import Fields, JSONValue, b64e, canonical, parse
from protocol.envelope import DraftHeader
from protocol.errors import BadValueError
from protocol.keys import DEVICE_ID_LEN, DeviceId, DeviceKeys, DevicePublic
from protocol.merkle import LeafHash, leaf_hash
from protocol.records import VERSION, TalksId, sign_record
from protocol.roster import Member, Roster

KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,23}(?:\.[a-z][a-z0-9_]{0,23}){0,2}")
"""Act kinds: one to three dot-separated lowercase words, e.g. ``round.close``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Act:
    """A parsed act (shape only: :class:`~protocol.ledger.Ledger` verifies the rest)."""

    kind: str
    talks: TalksId
    device: DeviceId
    roster: LeafHash
    time: int
    body: Mapping[str, JSONValue] = field(compare=False)
    sig: bytes = field(repr=False)
    raw: bytes = field(repr=False)

    @property
    def leaf(self) -> LeafHash:
        return leaf_hash(self.raw)

    def to_bytes(self) -> bytes:
        return self.raw

    def to_json(self) -> dict[str, JSONValue]:
        return cast(dict[str, JSONValue], parse(self.raw))

    @classmethod
    def from_json(cls, obj: JSONValue) -> Act:
        f = Fields(obj, "act")
        if f.str("t", max_len=8) != "act":
            raise BadValueError("not an act")
        f.version(VERSION)
        kind = f.str("a", max_len=72)
        if not KIND_RE.fullmatch(kind):
            raise BadValueError("act kind is not a valid name")
        if kind not in _FAMILY_OF:
            raise BadValueError(f"unknown act kind {kind!r}")
        body = f.raw("body")
        if not isinstance(body, dict):
            raise BadValueError("act body must be an object")
        act = cls(
            kind=kind,
            talks=TalksId(f.bytes("talks", length=32)),
            device=DeviceId(f.bytes("device", length=DEVICE_ID_LEN)),
            roster=LeafHash(f.bytes("roster", length=32)),
            time=f.int("time"),
            body=body,
            sig=f.bytes("sig", length=crypto.SIGNATURE_LEN),
            raw=canonical(obj),
        )
        f.done()
        return act

    @classmethod
    def from_bytes(cls, data: bytes) -> Act:
        return cls.from_json(parse(data))


def make_act(
    *,
    kind: str,
    body: Mapping[str, JSONValue],
    device: DeviceKeys,
    talks: TalksId,
    roster: LeafHash,
    time: int,
) -> Act:
    """Create and sign an act on the roster head ``roster``."""
    record: dict[str, JSONValue] = {
        "a": kind,
        "body": dict(body),
        "device": b64e(device.device_id),
        "roster": b64e(roster),
        "t": "act",
        "talks": b64e(talks),
        "time": time,
        "v": VERSION,
    }
    return Act.from_json(sign_record(device.signing, crypto.CTX_ACT, record))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActContext:
    """What a family may consult when it checks or applies one act (or draft).

    ``index`` is the log index the act (or draft) is to have; ``roster`` the roster in
    force there; ``member`` and ``device`` the signer (the sender, for a draft);
    ``drafts`` the ledger's draft index (drafts logged before ``index``; on a server
    that resumed from its store it may also answer for later ones, so compare indices);
    ``state`` this family's own state.
    """

    index: int
    talks: TalksId
    roster: Roster
    member: Member
    device: DevicePublic
    drafts: LedgerIndex
    state: Any


class ActFamily(Protocol):
    """The rules of one family of act kinds (see the module docstring)."""

    name: str
    kinds: frozenset[str]

    def new_state(self) -> Any:
        """The family's state before any of its acts."""

    def check(self, ctx: ActContext, act: Act) -> None:
        """Raise a :class:`~protocol.errors.ProtocolError` if ``act`` cannot be applied
        at ``ctx.index``; change nothing."""

    def apply(self, ctx: ActContext, act: Act) -> None:
        """Apply an act that :meth:`check` accepted (update ``ctx.state``)."""

    def check_draft(self, ctx: ActContext, header: DraftHeader) -> None:
        """Raise if the family refuses this draft at ``ctx.index``; most accept all."""


_FAMILIES: dict[str, ActFamily] = {}
_FAMILY_OF: dict[str, ActFamily] = {}


def register(family: ActFamily) -> None:
    """Make ``family``'s kinds known to every ledger (called once, at import)."""
    taken = family.kinds & _FAMILY_OF.keys()
    if family.name in _FAMILIES or taken:
        raise ValueError(f"act family {family.name!r} or kinds {sorted(taken)} already known")
    for kind in family.kinds:
        if not KIND_RE.fullmatch(kind):
            raise ValueError(f"act kind {kind!r} is not a valid name")
    _FAMILIES[family.name] = family
    for kind in family.kinds:
        _FAMILY_OF[kind] = family


def unregister(name: str) -> None:
    """Forget a family (tests that register one of their own)."""
    family = _FAMILIES.pop(name)
    for kind in family.kinds:
        del _FAMILY_OF[kind]


def family_of(kind: str) -> ActFamily:
    """The family of a known kind (``Act.from_json`` has refused unknown ones)."""
    try:
        return _FAMILY_OF[kind]
    except KeyError:
        raise BadValueError(f"unknown act kind {kind!r}") from None


def families() -> tuple[ActFamily, ...]:
    """Every registered family, in registration order."""
    return tuple(_FAMILIES.values())
