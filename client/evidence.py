"""``Evidence``: disclosing a draft to an arbitrator, and verifying what others disclose.

An evidence bundle carries the genesis, the roster changes before the draft, the draft
with its ciphertext and content key, and its receipts, each with an inclusion proof in
one checkpoint that carries the witness quorum.  A misbehaviour bundle
(:mod:`protocol.misbehaviour`) carries the same log pieces for a draft that did *not*
open for this device, with the wrapped keys and ciphertext exactly as received and the
key of this device's box only: proof that the sender wrapped for us something that does
not open its committed text.  Both are checked here only with the protocol's own
verifiers (:func:`protocol.evidence.verify_evidence`,
:func:`protocol.misbehaviour.verify_misbehaviour`), the ones the arbitrator runs.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from client.core import ClientCore, EnsureOpened, digits, fingerprint_digits
from client.errors import Alarm, StateError, UsageError, VerificationError
from client.logsync import LogSync
from client.state import OPENED, REJECTED, VerifiedLog
from protocol.agreement import (
    AgreedBundle,
    AgreedReport,
    RoundBundle,
    RoundReport,
    verify_agreed,
    verify_round,
)
from protocol.brokenpromise import (
    BrokenPromiseBundle,
    BrokenPromiseReport,
    verify_broken_promise,
)
from protocol.encoding import b64d, b64e, parse
from protocol.errors import (
    EvidenceError,
    NotARecipientError,
    NotMisbehaviourError,
    ProtocolError,
)
from protocol.evidence import MAX_EVIDENCE, EvidenceBundle, EvidenceReport, Proven
from protocol.evidence import verify_evidence as _verify_evidence
from protocol.genesis import Genesis
from protocol.keys import DEVICE_ID_LEN, DeviceId
from protocol.misbehaviour import (
    SENDER_FAULT_REASONS,
    MisbehaviourBundle,
    MisbehaviourReport,
    make_misbehaviour_bundle,
)
from protocol.misbehaviour import verify_misbehaviour as _verify_misbehaviour
from protocol.receipt import Promise


class Evidence:
    """Evidence bundles for drafts addressed to this device, and their offline check."""

    def __init__(self, core: ClientCore, logsync: LogSync, *, ensure_opened: EnsureOpened) -> None:
        self.core = core
        self.logsync = logsync
        self._ensure_opened = ensure_opened

    async def disclose(self, index: int, *, cover: int | None = None) -> EvidenceBundle:
        """Build an evidence bundle for a draft addressed to us (discloses its content key).

        ``cover``: a later index the checkpoint must cover too (the last initial of an
        agreed text); the roster changes then run up to the checkpoint."""
        core = self.core
        await self.logsync.sync()
        await self._ensure_opened(index)
        log = core.log
        header = log.draft(index)
        if header.mode is not None:
            raise UsageError(
                "non_paper: a non-paper proves its content to its recipients only; "
                "no bundle can attribute it (its header commits to no content)"
            )
        record = core.state.draft_record(index)
        if record is None or record.keys is None or record.ciphertext is None:
            raise StateError(f"draft {index} is not in the local cache")
        wrapped = b64d(record.keys[b64e(core.device_id)])
        content_key = core.keys.box.unwrap(wrapped)
        state = log.ledger.drafts[header.leaf]
        cp, text = await self.logsync.quorum_checkpoint(index if cover is None else cover)
        roster_end = index if cover is None else cp.size

        def proven(i: int) -> Proven:
            return _proven(log, i, cp.size)

        bundle = EvidenceBundle(
            genesis=proven(0),
            roster=tuple(proven(i) for i in log.roster_indices if i < roster_end),
            draft=proven(index),
            ciphertext=record.ciphertext,
            content_key=content_key,
            receipts=tuple(proven(i) for i in state.receipt_indices if i < cp.size),
            checkpoint=text,
        )
        # Check our own work with the arbitrator's verifier before handing it out.
        try:
            _verify_evidence(bundle, log.genesis.talks_id)
        except ProtocolError as exc:
            raise VerificationError(f"built an unverifiable bundle: {exc.detail}") from exc
        return bundle

    def proven(self, index: int, size: int) -> Proven:
        """The verified entry at ``index`` with its inclusion proof at ``size``."""
        return _proven(self.core.log, index, size)

    async def disclose_misbehaviour(self, index: int) -> MisbehaviourBundle:
        """Build a misbehaviour bundle for a draft addressed to us that this device
        rejected for a reason only its sender can cause (:data:`SENDER_FAULT_REASONS`).

        The bundle carries the wrapped keys and ciphertext exactly as the opener received
        and rejected them, the log proofs and a checkpoint with the witness quorum
        covering the draft, and discloses the key of this device's box for this draft
        only.  Refused, with a stable code, for a draft that is not addressed to us
        (:class:`UsageError` ``not_a_recipient``), that opened fine or was rejected for
        another reason (:class:`VerificationError` ``not_misbehaviour``), or whose box
        does not open even for us (``bad_evidence``: it would prove nothing).
        """
        core = self.core
        await self.logsync.sync()
        log = core.log
        header = log.draft(index)
        if core.device_id not in header.recipients:
            raise UsageError(
                f"draft {index} is not addressed to this device", code=NotARecipientError.code
            )
        if header.sender == core.device_id:
            raise VerificationError(
                f"draft {index} is this device's own: there is no misbehaviour to prove",
                code=NotMisbehaviourError.code,
            )
        try:
            # Fetches and opens the draft if the inbox has not yet; a rejection is
            # recorded with the keys and ciphertext the opener refused.
            await self._ensure_opened(index)
        except VerificationError:
            if core.state.draft_record(index) is None:
                raise
        record = core.state.draft_record(index)
        if record is None or record.keys is None or record.ciphertext is None:
            raise StateError(f"draft {index} is not in the local cache")
        if record.status == OPENED:
            raise VerificationError(
                f"draft {index} opened to its committed text: there is no misbehaviour to prove",
                code=NotMisbehaviourError.code,
            )
        if record.status != REJECTED or record.error not in SENDER_FAULT_REASONS:
            raise VerificationError(
                f"draft {index} was rejected for {record.error}, which need not be the "
                f"sender's doing: a misbehaviour bundle proves only "
                f"{' or '.join(sorted(SENDER_FAULT_REASONS))}",
                code=NotMisbehaviourError.code,
            )
        try:
            keys = {
                DeviceId(b64d(k, length=DEVICE_ID_LEN)): b64d(v) for k, v in record.keys.items()
            }
        except ProtocolError as exc:
            raise StateError(f"cached draft {index} is damaged ({exc.code})") from exc
        cp, text = await self.logsync.quorum_checkpoint(index)
        try:
            # Checked with the arbitrator's verifier before it is returned.
            return make_misbehaviour_bundle(
                me=core.keys,
                genesis=_proven(log, 0, cp.size),
                roster=[_proven(log, i, cp.size) for i in log.roster_indices if i < index],
                draft=_proven(log, index, cp.size),
                checkpoint=text,
                keys=keys,
                ciphertext=record.ciphertext,
            )
        except ProtocolError as exc:
            raise VerificationError(
                f"draft {index}: no misbehaviour bundle verifies: {exc.detail}", code=exc.code
            ) from exc

    async def disclose_broken_promise(self, index: int) -> BrokenPromiseBundle:
        """Build a broken-promise bundle (:mod:`protocol.brokenpromise`) for the server's
        promise of log index ``index``, which this client holds because the log has not
        honoured it (a ``gap`` or ``stale_log`` alarm).

        Substituted: the verified log holds another entry at the index; the bundle
        carries it with its proof in the latest verified checkpoint.  Unlogged: the
        checkpoints still stop short of the index; the bundle carries the latest
        checkpoint, whose witness cosignatures must be dated at least
        :data:`~protocol.brokenpromise.PROMISE_BOUND` after the promise.  The bundle is
        checked with the arbitrator's verifier before it is returned, so a promise that
        is kept, or not yet provably broken, is refused with ``not_misbehaviour``.
        """
        core = self.core
        with contextlib.suppress(Alarm):
            # The sync raises the very alarm this bundle proves; what it verified stays.
            await self.logsync.sync(witness=False)
        held = core.state.promises().get(index)
        if held is None:
            raise VerificationError(
                f"no server promise is held for log index {index}: a client keeps only the "
                "promises for its own writes that the log has not honoured",
                code=NotMisbehaviourError.code,
            )
        try:
            promise = Promise.from_json(held)
        except ProtocolError as exc:
            raise StateError(f"the promise held for index {index} is damaged") from exc
        log = core.log
        entry: Proven | None = None
        if log.size > index:
            stored = core.state.checkpoint()
            if stored is None or stored.size != log.size:
                raise StateError("no verified checkpoint covers the verified log")
            size, note = stored.size, stored.note
            entry = _proven(log, index, size)
        else:
            _, _, note = await self.logsync.fetch_checkpoint(log.size or None)
            size = log.size
        bundle = BrokenPromiseBundle(
            genesis=_proven(log, 0, size),
            roster=tuple(_proven(log, i, size) for i in log.roster_indices if 0 < i < size),
            promise=promise,
            checkpoint=note,
            entry=entry,
        )
        try:
            verify_broken_promise(bundle, log.genesis.talks_id, now=int(time.time()))
        except ProtocolError as exc:
            raise VerificationError(
                f"log index {index}: no broken-promise bundle verifies: {exc.detail}",
                code=exc.code,
            ) from exc
        return bundle

    @staticmethod
    def verify_evidence(data: bytes | Path, talks: str) -> EvidenceReport:
        """Verify an evidence bundle (bytes or a file) offline against a pinned talks id
        or fingerprint; raise :class:`VerificationError` unless it proves its claim."""
        if isinstance(data, Path):
            path = data
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
        return verify_evidence_bytes(data, talks)


def _proven(log: VerifiedLog, index: int, size: int) -> Proven:
    """The entry at ``index`` with its inclusion proof in the checkpoint of ``size``."""
    return Proven(
        index=index, entry=log.entries[index], proof=tuple(log.tree.inclusion_proof(index, size))
    )


def bundle_kind(data: bytes) -> str | None:
    """The ``t`` a bundle names (``"evidence"`` or ``"misbehaviour"``), or ``None`` for
    bytes that are no JSON object with a string ``t`` (the verifiers say what is wrong)."""
    try:
        obj = parse(data, max_size=MAX_EVIDENCE)
    except ProtocolError:
        return None
    kind = obj.get("t") if isinstance(obj, dict) else None
    return kind if isinstance(kind, str) else None


def _pin(talks: str, genesis_entry: bytes) -> bytes:
    """The talks id to verify against: ``talks`` itself (base64url), or, for a
    fingerprint, the bundle's own genesis id once its fingerprint matches."""
    talks_digits = fingerprint_digits(talks)
    if talks_digits is None:
        try:
            return b64d(talks.strip(), length=32, what="talks id")
        except ProtocolError as exc:
            raise UsageError("--talks must be a talks fingerprint (40 digits) or talks id") from exc
    try:
        genesis = Genesis.from_bytes(genesis_entry)
    except ProtocolError as exc:
        raise VerificationError(f"evidence is invalid: {exc.code}: {exc.detail}") from exc
    if digits(genesis.fingerprint) != talks_digits:
        raise VerificationError(
            "evidence is for other talks (fingerprint mismatch)", code="wrong_talks"
        )
    return bytes(genesis.talks_id)


def verify_misbehaviour_bytes(data: bytes, talks: str) -> MisbehaviourReport:
    """Verify a misbehaviour bundle against a pinned talks id (base64url) or fingerprint;
    raise :class:`VerificationError` (``not_misbehaviour``, ``bad_evidence``, ...)
    unless it proves the sender's misbehaviour."""
    genesis_entry = b""
    if fingerprint_digits(talks) is not None:
        try:
            genesis_entry = MisbehaviourBundle.from_bytes(data).genesis.entry
        except ProtocolError as exc:
            raise VerificationError(
                f"misbehaviour bundle is invalid: {exc.code}: {exc.detail}",
                code=EvidenceError.code,
            ) from exc
    pinned = _pin(talks, genesis_entry)
    try:
        return _verify_misbehaviour(data, pinned, now=int(time.time()))
    except ProtocolError as exc:
        raise VerificationError(
            f"misbehaviour bundle does not verify: {exc.detail}", code=exc.code
        ) from exc


def verify_broken_promise_bytes(data: bytes, talks: str) -> BrokenPromiseReport:
    """Verify a broken-promise bundle against a pinned talks id or fingerprint; raise
    :class:`VerificationError` (``not_misbehaviour``, ``bad_evidence``, ...) unless it
    proves the server broke its promise."""
    genesis_entry = b""
    if fingerprint_digits(talks) is not None:
        try:
            genesis_entry = BrokenPromiseBundle.from_bytes(data).genesis.entry
        except ProtocolError as exc:
            raise VerificationError(
                f"broken-promise bundle is invalid: {exc.code}: {exc.detail}",
                code=EvidenceError.code,
            ) from exc
    pinned = _pin(talks, genesis_entry)
    try:
        return verify_broken_promise(data, pinned, now=int(time.time()))
    except ProtocolError as exc:
        raise VerificationError(
            f"broken-promise bundle does not verify: {exc.detail}", code=exc.code
        ) from exc


def verify_agreed_bytes(data: bytes, talks: str) -> AgreedReport:
    """Verify an agreed-text bundle (:mod:`protocol.agreement`) against a pinned talks id
    (base64url) or fingerprint; raise :class:`VerificationError` unless it verifies."""
    try:
        bundle = AgreedBundle.from_bytes(data)
    except ProtocolError as exc:
        raise VerificationError(
            f"agreed-text bundle is invalid: {exc.code}: {exc.detail}", code=EvidenceError.code
        ) from exc
    pinned = _pin(talks, bundle.evidence.genesis.entry)
    try:
        return verify_agreed(bundle, pinned, now=int(time.time()))
    except ProtocolError as exc:
        raise VerificationError(
            f"agreed-text bundle does not verify: {exc.detail}", code=exc.code
        ) from exc


def verify_round_bytes(data: bytes, talks: str) -> RoundReport:
    """Verify a round record bundle (:mod:`protocol.agreement`) against a pinned talks
    id (base64url) or fingerprint; raise :class:`VerificationError` unless it verifies."""
    try:
        bundle = RoundBundle.from_bytes(data)
    except ProtocolError as exc:
        raise VerificationError(
            f"round bundle is invalid: {exc.code}: {exc.detail}", code=EvidenceError.code
        ) from exc
    pinned = _pin(talks, bundle.genesis.entry)
    try:
        return verify_round(bundle, pinned, now=int(time.time()))
    except ProtocolError as exc:
        raise VerificationError(
            f"round bundle does not verify: {exc.detail}", code=exc.code
        ) from exc


def verify_evidence_bytes(data: bytes, talks: str) -> EvidenceReport:
    """Verify an evidence bundle against a pinned talks id (base64url) or fingerprint.

    A fingerprint cannot be turned back into a talks id, so the bundle's genesis supplies
    the candidate id and the fingerprint must match it; the protocol verifier then
    checks everything against that id.
    """
    genesis_entry = b""
    if fingerprint_digits(talks) is not None:
        try:
            genesis_entry = EvidenceBundle.from_bytes(data).genesis.entry
        except ProtocolError as exc:
            raise VerificationError(f"evidence is invalid: {exc.code}: {exc.detail}") from exc
    pinned = _pin(talks, genesis_entry)
    try:
        return _verify_evidence(data, pinned, now=int(time.time()))
    except ProtocolError as exc:
        raise VerificationError(f"evidence does not verify: {exc.detail}", code=exc.code) from exc
