"""Broken-promise bundles: "the log promised entry L at index N, and did not keep it".

Pure and sans-IO, like the rest of :mod:`protocol`: bytes in, a report or an error out.

Theory of operation
-------------------
For every write it accepts, the server signs an acceptance *promise* with its log key
(``docket/v1/promise\\0``, :class:`~protocol.receipt.Promise`): leaf hash ``L`` will be
at log index ``N``, signed at server time ``T`` (ms).  The promise is the server's own
word, so once it is broken it is evidence against the server, checkable offline with
nothing but the pinned talks id.  There are two ways to break it:

* **substituted**: a checkpoint signed by the same log key commits to a tree of more
  than ``N`` entries whose entry ``N`` is not ``L``.  The two signatures contradict each
  other; no witness or clock is needed.
* **unlogged**: the entry was never checkpointed within :data:`PROMISE_BOUND` seconds.
  The log key alone cannot show when a checkpoint was current (checkpoints carry no
  time), so this needs the witnesses: a checkpoint of at most ``N`` entries carrying the
  witness quorum of the roster with cosignatures all dated at least ``T / 1000 +
  PROMISE_BOUND``.  Witnesses cosign only the checkpoint they hold as latest and never go
  back, so the quorum saw the log stop short of ``N`` after the bound had passed.

Bundle (canonical JSON, ``t = "broken_promise"``)::

    genesis      the genesis record (entry 0) with its inclusion proof in the checkpoint
    roster       roster/channel changes in the checkpoint (the witnesses of the last one
                 shown judge the quorum), each with its inclusion proof
    promise      the server-signed promise
    checkpoint   a C2SP checkpoint note, signed by the log (with cosignatures)
    entry        substituted: the entry the checkpoint holds at the promised index, with
                 its inclusion proof; unlogged: null

Verification (:func:`verify_broken_promise`), each step raising
:class:`~protocol.errors.EvidenceError` that names it:

1. the genesis is entry 0 and its leaf hash is the pinned talks id;
2. the promise verifies under the genesis' log key and names the genesis' origin;
3. the roster changes replay from the genesis, indices increasing, all inside the
   checkpoint;
4. the checkpoint carries the log's signature; genesis, roster changes and ``entry`` are
   included in its tree at their indices;
5. substituted: ``entry`` is at the promised index and its leaf hash differs from the
   promise's; unlogged: the checkpoint's size is at most the promised index and the
   quorum of the replayed roster cosigned it no earlier than the bound (and, with a
   verifier clock, not from its future).  Any other case is a kept (or not yet provably
   broken) promise: :class:`~protocol.errors.NotMisbehaviourError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol import checkpoint as cp
from protocol import crypto, merkle
from protocol.encoding import Fields, JSONValue, canonical, parse
from protocol.errors import EvidenceError, NotMisbehaviourError, ProtocolError
from protocol.evidence import MAX_ITEMS, Proven, require_trusted
from protocol.genesis import Genesis
from protocol.receipt import Promise
from protocol.roster import Roster, RosterChange

PROMISE_BOUND = 300
"""Seconds within which a promised entry must be covered by a checkpoint (the clients'
``stale_log`` patience, :data:`client.core.STALE_PROMISE_MS`)."""
MAX_BUNDLE = 16 * 1024 * 1024
SUBSTITUTED, UNLOGGED = "substituted", "unlogged"


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokenPromiseBundle:
    """A server promise and the signed log that contradicts it (module doc)."""

    genesis: Proven
    roster: tuple[Proven, ...]
    promise: Promise
    checkpoint: str
    entry: Proven | None

    def to_bytes(self) -> bytes:
        obj: dict[str, JSONValue] = {
            "checkpoint": self.checkpoint,
            "entry": None if self.entry is None else self.entry.to_json(),
            "genesis": self.genesis.to_json(),
            "promise": self.promise.to_json(),
            "roster": [r.to_json() for r in self.roster],
            "t": "broken_promise",
            "v": 1,
        }
        return canonical(obj)

    @classmethod
    def from_bytes(cls, data: bytes) -> BrokenPromiseBundle:
        f = Fields(parse(data, max_size=MAX_BUNDLE), "broken_promise")
        f.literal("t", "broken_promise")
        f.version(1)
        raw_entry = f.raw("entry")
        bundle = cls(
            genesis=Proven.from_json(f.raw("genesis"), "broken_promise.genesis"),
            roster=tuple(
                Proven.from_json(v, "broken_promise.roster")
                for v in f.list("roster", max_items=MAX_ITEMS)
            ),
            promise=Promise.from_json(f.raw("promise")),
            checkpoint=f.str("checkpoint", max_len=64 * 1024),
            entry=None
            if raw_entry is None
            else Proven.from_json(raw_entry, "broken_promise.entry"),
        )
        f.done()
        return bundle


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokenPromiseReport:
    """What a verified bundle proves."""

    talks_fingerprint: str
    origin: str
    index: int
    promised_leaf: bytes
    promise_time: int
    """The server's own time in the promise (ms)."""
    kind: str
    """:data:`SUBSTITUTED` or :data:`UNLOGGED`."""
    checkpoint_size: int
    cosigners: tuple[str, ...]
    """Unlogged: the witnesses whose late cosignatures show the log stopped short."""
    logged_leaf: bytes | None
    """Substituted: the leaf the checkpoint holds at the index instead."""


def _wrap(step: str, exc: ProtocolError) -> EvidenceError:
    return EvidenceError(f"step {step}: {exc.code}: {exc.detail}")


def verify_broken_promise(
    data: bytes | BrokenPromiseBundle, pinned_talks: bytes, *, now: int | None = None
) -> BrokenPromiseReport:
    """Verify a broken-promise bundle offline (steps 1-5 of the module docstring).

    ``now`` (seconds), when given, keeps cosignatures from the verifier's future out of
    the quorum.  Raises :class:`~protocol.errors.EvidenceError` naming the failed step,
    :class:`~protocol.errors.NotMisbehaviourError` for a promise the bundle shows kept
    or not yet provably broken.
    """
    try:
        bundle = (
            data if isinstance(data, BrokenPromiseBundle) else BrokenPromiseBundle.from_bytes(data)
        )
    except ProtocolError as exc:
        raise _wrap("0 (parse)", exc) from exc
    # 1. genesis and pin
    try:
        if bundle.genesis.index != 0:
            raise EvidenceError("the genesis must be entry 0")
        genesis = Genesis.from_bytes(bundle.genesis.entry)
        genesis.check_talks(pinned_talks)
    except ProtocolError as exc:
        raise _wrap("1 (genesis)", exc) from exc
    # 2. the promise is the log's
    promise = bundle.promise
    try:
        promise.verify(genesis.log_key)
        if promise.origin != genesis.origin:
            raise EvidenceError("the promise names another log")
    except ProtocolError as exc:
        raise _wrap("2 (promise)", exc) from exc
    # 3. the roster, for the witnesses
    roster = Roster(genesis)
    last = 0
    try:
        for item in bundle.roster:
            if item.index <= last:
                raise EvidenceError("roster entries out of order")
            roster.apply(RosterChange.from_bytes(item.entry))
            last = item.index
    except ProtocolError as exc:
        raise _wrap("3 (roster)", exc) from exc
    # 4. the log's checkpoint, and inclusion of everything shown
    try:
        tree, note = cp.open_checkpoint(
            bundle.checkpoint.encode("utf-8"),
            origin=genesis.origin,
            log_name=genesis.log_name,
            log_key=genesis.log_key,
        )
        shown: Sequence[Proven] = (bundle.genesis, *bundle.roster)
        if bundle.entry is not None:
            shown = (*shown, bundle.entry)
        for item in shown:
            merkle.verify_inclusion(
                merkle.leaf_hash(item.entry), item.index, tree.size, item.proof, tree.root
            )
    except ProtocolError as exc:
        raise _wrap("4 (checkpoint)", exc) from exc
    # 5. broken, one way or the other
    if bundle.entry is not None:
        if bundle.entry.index != promise.index:
            raise _wrap("5 (entry)", EvidenceError("the entry is not at the promised index"))
        logged = merkle.leaf_hash(bundle.entry.entry)
        if crypto.equal(logged, promise.leaf):
            raise NotMisbehaviourError("step 5: the log holds the promised entry at its index")
        return _report(genesis, promise, tree, kind=SUBSTITUTED, cosigners=(), logged=logged)
    if tree.size > promise.index:
        raise NotMisbehaviourError(
            "step 5: the checkpoint covers the promised index; show the entry it holds there"
        )
    not_before = promise.time // 1000 + PROMISE_BOUND
    try:
        cosigners = require_trusted(tree, note, roster, now=now, not_before=not_before)
    except ProtocolError as exc:
        raise NotMisbehaviourError(
            f"step 5: no witness quorum cosigned a checkpoint short of index {promise.index} "
            f"{PROMISE_BOUND} s or more after the promise ({exc.detail})"
        ) from exc
    return _report(genesis, promise, tree, kind=UNLOGGED, cosigners=cosigners, logged=None)


def _report(
    genesis: Genesis,
    promise: Promise,
    tree: cp.Checkpoint,
    *,
    kind: str,
    cosigners: tuple[str, ...],
    logged: bytes | None,
) -> BrokenPromiseReport:
    return BrokenPromiseReport(
        talks_fingerprint=genesis.fingerprint,
        origin=genesis.origin,
        index=promise.index,
        promised_leaf=bytes(promise.leaf),
        promise_time=promise.time,
        kind=kind,
        checkpoint_size=tree.size,
        cosigners=cosigners,
        logged_leaf=None if logged is None else bytes(logged),
    )
