"""The summary of a replayed log: drafts and receipts by channel and by delegation, and
the gaps, drafts that some recipient members have not received (``unreceived``: no
``received`` or ``rejected`` receipt) or not acknowledged (``unacknowledged``).

A member counts as having answered when any of its recipient devices did; the sender's
member is never waited for (see :class:`~client.auditor.report.Pending`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from operator import attrgetter

from client.auditor.report import Alarm, ChannelReport, DelegationReport, Pending
from protocol.keys import DeviceId
from protocol.ledger import DraftState, Ledger
from protocol.receipt import ACKNOWLEDGED, RECEIVED, REJECTED

_Missing = tuple[tuple[str, frozenset[DeviceId]], ...]


def summarise(
    ledger: Ledger, device_member: dict[DeviceId, str]
) -> tuple[list[ChannelReport], list[DelegationReport], list[Pending], list[Pending]]:
    """The replayed log by channel and by delegation, and the drafts still waiting for a
    receipt or an acknowledgement, in log order.

    ``device_member`` maps every device the log enrolled to its member (the replay
    collects it); the roster's own devices are added to it.
    """
    roster = ledger.roster
    member_of = device_member
    for member in roster.members.values():
        for dev_id in member.devices:
            member_of[dev_id] = member.id

    member_delegation = {m.id: m.delegation for m in roster.members.values()}
    delegation_of = member_delegation.get  # None for no such member

    channels = {c.id: ChannelReport(channel=c.id, kind=c.kind) for c in roster.channels.values()}
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
    states = sorted(ledger.drafts.values(), key=lambda s: s.index)
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
                affected = waiting_on[pending.missing] = {delegation_of(m) for m in pending.missing}
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


# Rejection reasons that, for a draft the ledger accepted (signature, recipient set, the
# wrapped-key hash and the ciphertext hash are all signed by the sender and checked before
# these steps), only the sender can have caused.
SENDER_FAULT_REASONS = ("decryption_failed", "commitment_mismatch")
EQUIVOCATION = "equivocation"


def equivocations(ledger: Ledger, device_member: dict[DeviceId, str]) -> list[Alarm]:
    """An ``equivocation`` alarm against the sender of every draft that a recipient
    rejected for a reason only the sender can cause: its key did not open to the text
    the sender committed to.  The recipient's signed rejection is the claim;
    ``docket disclose --misbehaviour`` turns it into a proof an arbitrator checks."""
    alarms: list[Alarm] = []
    for state in sorted(ledger.drafts.values(), key=lambda s: s.index):
        faults = sorted(
            (device_member.get(dev, "?"), r.reason or "")
            for dev, r in state.rejected.items()
            if r.reason in SENDER_FAULT_REASONS
        )
        if not faults:
            continue
        who = ", ".join(f"{member} ({reason})" for member, reason in faults)
        opened = len(state.received)
        alarms.append(
            Alarm(
                code=EQUIVOCATION,
                reason=f"draft by {state.sender_member} did not open to its committed text "
                f"for {who}; {opened} other device(s) received it",
                index=state.index,
            )
        )
    return alarms
