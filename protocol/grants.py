"""History grants: a logged act that gives a device the content keys of earlier drafts.

Theory of operation
-------------------
A draft's content key is wrapped to the recipient devices of the channel *when it was
sent*, and that recipient set is signed and never changes.  A device enrolled later (a
replacement laptop, a member who joins late) can read an earlier draft only through a
**grant**: an act of kind ``history.grant`` (:mod:`protocol.acts`) whose body carries
the content keys of the chosen drafts re-wrapped (sealed box) to the new device::

    {"channel": id, "device": b64u(16), "upto": index,
     "keys": [{"index": n, "key": b64u(sealed content key)}, ...]}

The grant is self-contained: whoever holds it and the draft's ciphertext can check that
the key it carries opens the draft and matches the sender's commitment, and the log
shows who granted what to whom, when.  The server never decides who gets history; it
relays a draft's ciphertext to a device the log shows was granted it, as it does to
the draft's recipients.

The rules, checked by server, clients and auditor alike (:meth:`Grants.check`):

1. ``device`` is a current device of a current member who is in ``channel`` at the
   grant's index (``not_a_member`` otherwise): a grant cannot reach outside the channel;
2. the signer is the head of that member's delegation (the mediator, for members on
   the mediator's side), or another current device of the same member
   (``unauthorised_change``), never the grantee itself;
3. ``keys`` is not empty, strictly ascending by ``index``, each ``index`` below the
   grant's own and at most ``upto``, each naming a logged draft of ``channel``
   (``bad_value``);
4. the signer's device held each key: it was a recipient of the draft or was granted
   it earlier (``not_a_recipient``);
5. the grantee holds none of them yet, as a recipient or by an earlier grant
   (``duplicate``).

The ledger cannot check that a wrapped key is the right one (it holds no private key);
the grantee does, with :func:`open_granted`, and a wrong key fails to open exactly as a
wrong wrapped key in a draft does.  A draft's original recipient set is untouched:
readers through a grant are listed apart (:attr:`GrantState.readers`), with the index
of the grant that let them read.

A reader through a grant acknowledges what it opened with a **grant receipt**, an act
of kind ``history.received`` whose body says it came through a grant::

    {"index": n, "entry": b64u(leaf of the draft at n), "grant": index of the grant,
     "kind": "received" | "rejected", "reason": code | null}

valid when the signer's device was granted draft ``n`` by exactly that grant
(``not_a_recipient``), ``entry`` is that draft's leaf (``receipt_mismatch``), a reason
is given exactly for ``rejected`` (``bad_value``), and the device has not receipted the
draft through its grant before (``duplicate``).  The drafts' own receipts (§7) stay
the signed recipients'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from protocol import acts, crypto
from protocol.acts import Act, ActContext
from protocol.encoding import Fields, JSONValue, b64e
from protocol.envelope import DraftHeader, OpenedDraft, open_with_key
from protocol.errors import (
    BadValueError,
    DuplicateError,
    NotAMemberError,
    NotARecipientError,
    ReceiptMismatchError,
    UnauthorisedChangeError,
)
from protocol.keys import DEVICE_ID_LEN, DeviceId, DeviceKeys, DevicePublic
from protocol.records import ID_RE
from protocol.roster import ROLE_MEDIATOR, Roster

KIND = "history.grant"
RECEIPT_KIND = "history.received"
RECEIPT_KINDS = ("received", "rejected")
MAX_KEYS = 4096
WRAPPED_LEN = crypto.CONTENT_KEY_LEN + crypto.SEAL_OVERHEAD


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """A parsed grant body."""

    channel: str
    device: DeviceId
    upto: int
    keys: tuple[tuple[int, bytes], ...]

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "channel": self.channel,
            "device": b64e(self.device),
            "keys": [{"index": i, "key": b64e(k)} for i, k in self.keys],
            "upto": self.upto,
        }

    @classmethod
    def from_json(cls, value: JSONValue) -> Grant:
        f = Fields(value, "grant")
        channel = f.str("channel", max_len=64, pattern=ID_RE)
        device = DeviceId(f.bytes("device", length=DEVICE_ID_LEN))
        upto = f.int("upto", lo=1)
        items = f.list("keys", max_items=MAX_KEYS)
        f.done()
        keys = []
        for item in items:
            g = Fields(item, "grant.keys")
            keys.append((g.int("index", lo=1), g.bytes("key", length=WRAPPED_LEN)))
            g.done()
        if not keys:
            raise BadValueError("a grant carries at least one key")
        indices = [i for i, _ in keys]
        if indices != sorted(set(indices)):
            raise BadValueError("grant keys must be strictly ascending by index")
        if indices[-1] > upto:
            raise BadValueError("a granted draft lies past the grant's upto index")
        return cls(channel=channel, device=device, upto=upto, keys=tuple(keys))


@dataclass(frozen=True, slots=True, kw_only=True)
class Reader:
    """A device that may read a draft through a grant: who, and by which grant."""

    device: DeviceId
    member: str
    grant: int
    granted_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantReceipt:
    """A reader's receipt for a draft it got through a grant (logged at ``at``)."""

    device: DeviceId
    index: int
    grant: int
    kind: str
    reason: str | None
    at: int
    time: int


def _receipt_body(body: Mapping[str, JSONValue]) -> tuple[int, bytes, int, str, str | None]:
    f = Fields(dict(body), "grant receipt")
    index = f.int("index", lo=1)
    entry = f.bytes("entry", length=32)
    grant = f.int("grant", lo=1)
    kind = f.str("kind", max_len=16)
    reason = f.opt_str("reason", max_len=64)
    f.done()
    if kind not in RECEIPT_KINDS or (reason is None) != (kind == "received"):
        raise BadValueError("a grant receipt is received, or rejected with a reason")
    return index, entry, grant, kind, reason


@dataclass(slots=True)
class GrantState:
    """Draft index -> the devices that read it through a grant; grant index -> grant."""

    readers: dict[int, dict[DeviceId, Reader]] = field(default_factory=dict)
    grants: dict[int, Grant] = field(default_factory=dict)
    receipts: dict[int, dict[DeviceId, GrantReceipt]] = field(default_factory=dict)
    """Draft index -> the grant receipts logged for it, by device."""

    def holds(self, device: bytes, index: int) -> bool:
        return DeviceId(device) in self.readers.get(index, {})

    def granted_to(self, device: bytes) -> dict[int, int]:
        """Draft index -> grant index, for every draft granted to ``device``."""
        return {i: r[DeviceId(device)].grant for i, r in self.readers.items() if device in r}


def _owner_ok(roster: Roster, signer: str, grantee: str) -> bool:
    """Rule 2: the grantee's head (mediator for the mediator's side) or the member."""
    if signer == grantee:
        return True
    member = roster.members[grantee]
    if member.delegation is None:
        return roster.members[signer].role == ROLE_MEDIATOR
    return roster.delegations[member.delegation].head == signer


class Grants:
    """The ``history.grant`` family (see the module docstring)."""

    name = "grants"
    kinds = frozenset({KIND, RECEIPT_KIND})

    def new_state(self) -> GrantState:
        return GrantState()

    def check(self, ctx: ActContext, act: Act) -> None:
        if act.kind == RECEIPT_KIND:
            self._check_receipt(ctx, act)
            return
        grant = Grant.from_json(dict(act.body))
        state: GrantState = ctx.state
        roster = ctx.roster
        # 1. the grantee is in the channel now
        roster.channel(grant.channel)
        grantee = roster.devices.get(grant.device)
        if grantee is None or not roster.is_channel_member(grant.channel, grantee):
            raise NotAMemberError("the granted device is not in the channel at the grant")
        # 2. who may grant
        signer_device = ctx.device.device_id
        if signer_device == grant.device or not _owner_ok(roster, ctx.member.id, grantee):
            raise UnauthorisedChangeError(
                "only the member's head or another of the member's devices grants history"
            )
        for index, _key in grant.keys:
            # 3. drafts of this channel, before the grant
            if index >= ctx.index:
                raise BadValueError("a grant names only drafts logged before it")
            leaf = ctx.drafts.leaf_at(index)
            draft = None if leaf is None else ctx.drafts.draft(leaf)
            if draft is None or draft.index != index or draft.header.channel != grant.channel:
                raise BadValueError(f"no draft of channel {grant.channel!r} at index {index}")
            # 4. the signer held the key
            if signer_device not in draft.header.recipients and not state.holds(
                signer_device, index
            ):
                raise NotARecipientError(f"the granting device never held the key of {index}")
            # 5. the grantee does not yet
            if grant.device in draft.header.recipients or state.holds(grant.device, index):
                raise DuplicateError(f"the device already holds the key of draft {index}")

    def _check_receipt(self, ctx: ActContext, act: Act) -> None:
        index, entry, grant, _kind, _reason = _receipt_body(act.body)
        state: GrantState = ctx.state
        reader = state.readers.get(index, {}).get(ctx.device.device_id)
        if reader is None or reader.grant != grant:
            raise NotARecipientError("this device was not granted that draft by that grant")
        leaf = ctx.drafts.leaf_at(index)
        if leaf is None or not crypto.equal(leaf, entry):
            raise ReceiptMismatchError("the grant receipt names another draft")
        if ctx.device.device_id in state.receipts.get(index, {}):
            raise DuplicateError("this device already receipted the draft through its grant")

    def apply(self, ctx: ActContext, act: Act) -> None:
        state: GrantState = ctx.state
        if act.kind == RECEIPT_KIND:
            index, _entry, grant_at, kind, reason = _receipt_body(act.body)
            device = ctx.device.device_id
            state.receipts.setdefault(index, {})[device] = GrantReceipt(
                device=device,
                index=index,
                grant=grant_at,
                kind=kind,
                reason=reason,
                at=ctx.index,
                time=act.time,
            )
            return
        grant = Grant.from_json(dict(act.body))
        member = ctx.roster.devices[grant.device]
        for index, _key in grant.keys:
            state.readers.setdefault(index, {})[grant.device] = Reader(
                device=grant.device, member=member, grant=ctx.index, granted_by=ctx.member.id
            )
        state.grants[ctx.index] = grant

    def check_draft(self, ctx: ActContext, header: DraftHeader) -> None:
        return None


FAMILY = Grants()
acts.register(FAMILY)


def make_grant_body(
    *,
    channel: str,
    device: DevicePublic,
    upto: int,
    content_keys: Mapping[int, bytes],
    rng: crypto.Rng,
) -> dict[str, JSONValue]:
    """Re-wrap ``content_keys`` (draft index -> content key) to ``device``."""
    keys = tuple(
        (i, crypto.wrap_key(content_keys[i], device.enc_pk, rng)) for i in sorted(content_keys)
    )
    return Grant(channel=channel, device=device.device_id, upto=upto, keys=keys).to_json()


def granted_key(act_body: Mapping[str, JSONValue], index: int, me: DeviceKeys) -> bytes | None:
    """The content key of draft ``index`` that a grant body carries for ``me``, or
    ``None`` (raises :class:`~protocol.errors.DecryptionError` on a wrong wrapping)."""
    grant = Grant.from_json(dict(act_body))
    if grant.device != me.device_id:
        return None
    for i, wrapped in grant.keys:
        if i == index:
            return me.box.unwrap(wrapped)
    return None


def open_granted(
    header: DraftHeader,
    ciphertext: bytes,
    grant_body: Mapping[str, JSONValue],
    index: int,
    me: DeviceKeys,
) -> OpenedDraft:
    """Open a draft through a grant: unwrap the granted key and check the commitment
    (any failure is the opaque decryption error or ``commitment_mismatch``)."""
    key = granted_key(grant_body, index, me)
    if key is None:
        raise NotARecipientError("the grant carries no key of this draft for this device")
    payload = open_with_key(header, ciphertext, key)
    return OpenedDraft(header=header, payload=payload, content_key=key)


def readers_of(state: GrantState, index: int) -> Iterable[Reader]:
    """The devices reading draft ``index`` through a grant, by device id."""
    return [state.readers.get(index, {})[d] for d in sorted(state.readers.get(index, {}))]


def grant_receipt_body(
    *, index: int, entry: bytes, grant: int, kind: str, reason: str | None
) -> dict[str, JSONValue]:
    """The body of a ``history.received`` act (see the module docstring)."""
    return {"entry": b64e(entry), "grant": grant, "index": index, "kind": kind, "reason": reason}
