"""Witness quorum and freshness: when a checkpoint is trusted, and when it is current.

Theory of operation
-------------------
A checkpoint is signed by the log key alone; witnesses add ``cosignature/v1`` lines,
each with the witness's own timestamp (POSIX seconds).  What counts is decided by the
:class:`~protocol.genesis.WitnessPolicy` in force in the roster *at the checkpoint's
size* (the roster after applying entries ``0 .. size-1``), against that roster's
witnesses (:meth:`~protocol.roster.Roster.witnesses`) and their parties
(:meth:`~protocol.roster.Roster.witness_parties`):

1. **Valid cosigners.**  A line counts only if it names a witness of that roster and
   verifies under one of its keys; each key counts for at most one witness
   (:func:`protocol.evidence.quorum_cosigners`), because a cosignature does not cover
   the witness name.
2. **Not from the future.**  When the caller has a clock (``now``), a timestamp more
   than :data:`MAX_FUTURE` seconds ahead of it does not count.
3. **Monotone per witness.**  When the caller remembers the last timestamp it accepted
   from each witness (``last_seen``), an older one does not count: a witness never
   goes back in time, so an older line is a replay.
4. **The rule.**  ``count``: at least ``min(quorum, number of witnesses)`` valid
   cosigners.  ``parties``: the mediator's witness, and more than half of the
   roster's delegations through at least one of their witnesses, and at least
   ``min(quorum, number of witnesses)`` cosigners in all.  A roster with no delegation
   yet needs the mediator alone.
5. **Fresh.**  The same rule again, over only the cosigners whose timestamp is at least
   ``now - max_age``: a view is *current* when a quorum vouched for it recently.

A client acts (seals a draft, signs a roster change or a receipt) only on a current
view (:class:`~protocol.errors.StaleViewError` otherwise); auditors and arbitrators,
who verify after the fact, need only step 4.  This module is sans-IO: the clock is a
parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol import checkpoint as cp
from protocol.errors import CosignatureTimeError, ProtocolError, QuorumError, StaleViewError
from protocol.genesis import RULE_PARTIES
from protocol.roster import PARTY_MEDIATOR, Roster

MAX_FUTURE = 60  # seconds a cosignature may be ahead of the verifier's clock


@dataclass(frozen=True, slots=True, kw_only=True)
class QuorumView:
    """What the cosignatures on one checkpoint amount to under one roster."""

    cosigners: Mapping[str, int]  # witness name -> timestamp of its counted cosignature
    met: bool
    fresh: bool  # False when no clock was given
    needed: str  # the rule in words, for messages
    rejected: Mapping[str, str]  # witness name -> why its line did not count


def cosigner_times(
    checkpoint: cp.Checkpoint,
    note: cp.SignedNote,
    witnesses: Mapping[str, Sequence[bytes]],
) -> dict[str, int]:
    """Witness name -> the latest timestamp among its valid cosignatures on
    ``checkpoint`` (step 1), each line verified once.

    A cosignature does not cover the witness name, so one key listed under two names
    must not count twice: each key counts for at most one witness (names in code-point
    order).
    """
    out: dict[str, int] = {}
    used_keys: set[bytes] = set()
    for name, keys in sorted(witnesses.items()):
        lines = [sig for sig in note.signatures if sig.name == name]
        for key in keys:
            if key in used_keys:
                continue
            stamps = []
            for sig in lines:
                try:
                    stamps.append(cp.verify_cosignature(checkpoint, sig, name, key))
                except ProtocolError:
                    continue
            if stamps:
                out[name] = max(stamps)
                used_keys.add(key)
                break
    return out


def quorum_cosigners(
    checkpoint: cp.Checkpoint,
    note: cp.SignedNote,
    witnesses: Mapping[str, Sequence[bytes]],
) -> set[str]:
    """Names of the witnesses with a valid cosignature on ``checkpoint`` (each key counts
    for at most one witness: :func:`cosigner_times`)."""
    return set(cosigner_times(checkpoint, note, witnesses))


def rule_met(names: set[str] | frozenset[str], roster: Roster) -> bool:
    """Step 4: do these (valid, distinct-key) cosigners satisfy the roster's policy?"""
    policy = roster.policy
    known = len(roster.witnesses())
    if len(names) < min(policy.quorum, known):
        return False
    if policy.rule != RULE_PARTIES:
        return True
    parties = roster.witness_parties()
    spoke = {parties[n] for n in names if n in parties}
    if PARTY_MEDIATOR not in spoke:
        return False
    delegations = set(roster.delegations)
    return not delegations or 2 * len(delegations & spoke) > len(delegations)


def describe_rule(roster: Roster) -> str:
    policy = roster.policy
    if policy.rule == RULE_PARTIES:
        n = len(roster.delegations)
        return (
            f"the mediator and {n // 2 + 1} of {n} delegations"
            if n
            else "the mediator (no delegation yet)"
        )
    return f"{min(policy.quorum, len(roster.witnesses()))} witnesses"


def evaluate(
    checkpoint: cp.Checkpoint,
    note: cp.SignedNote,
    roster: Roster,
    *,
    now: int | None = None,
    last_seen: Mapping[str, int] | None = None,
    not_before: int | None = None,
) -> QuorumView:
    """Steps 1-5 for ``checkpoint`` under ``roster`` (the roster at its size).

    ``not_before`` (seconds): cosignatures dated earlier do not count (an evidence
    bundle's checkpoint cannot have been cosigned before the entry it covers existed).
    """
    counted: dict[str, int] = {}
    rejected: dict[str, str] = {}
    for name, ts in cosigner_times(checkpoint, note, roster.witnesses()).items():
        if now is not None and ts > now + MAX_FUTURE:
            rejected[name] = "dated in the future"
        elif not_before is not None and ts < not_before:
            rejected[name] = "dated before the entry it covers"
        elif last_seen is not None and ts < last_seen.get(name, 0):
            rejected[name] = "older than a cosignature already seen from this witness"
        else:
            counted[name] = ts
    met = rule_met(set(counted), roster)
    fresh = False
    if now is not None and met:
        horizon = now - roster.policy.max_age
        fresh = rule_met({n for n, ts in counted.items() if ts >= horizon}, roster)
    return QuorumView(
        cosigners=counted, met=met, fresh=fresh, needed=describe_rule(roster), rejected=rejected
    )


def require_quorum(view: QuorumView) -> None:
    if not view.met:
        raise QuorumError(f"checkpoint lacks the witness quorum ({view.needed})")


def require_fresh(view: QuorumView, roster: Roster) -> None:
    """Refuse to act on a view that no fresh quorum vouches for."""
    require_quorum(view)
    if not view.fresh:
        raise StaleViewError(
            f"the witness quorum ({view.needed}) has not cosigned this view in the last "
            f"{roster.policy.max_age} s"
        )


def cosignature_time(sig: cp.NoteSignature) -> int:
    """The timestamp a cosignature line carries (its first 8 bytes; the line must
    already have been verified, or be about to be)."""
    if len(sig.sig_bytes) != cp.COSIGNATURE_PAYLOAD_LEN:
        raise QuorumError("not a cosignature/v1 line")
    return int.from_bytes(sig.sig_bytes[:8], "big")


def check_cosignature_time(
    timestamp: int, *, now: int, last: int | None, max_age: int | None = None
) -> None:
    """The timestamp rules for one incoming cosignature (the server's and a witness
    client's check): not more than :data:`MAX_FUTURE` ahead of ``now``, not older than
    the ``last`` one accepted from the same witness, and, with ``max_age``, not older
    than ``now - max_age``."""
    if timestamp > now + MAX_FUTURE:
        raise CosignatureTimeError("cosignature is dated in the future")
    if last is not None and timestamp < last:
        raise CosignatureTimeError("cosignature is older than one already accepted")
    if max_age is not None and timestamp < now - max_age:
        raise CosignatureTimeError("cosignature is older than the policy's max_age")
