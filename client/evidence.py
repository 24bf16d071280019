"""``Evidence``: disclosing a draft to an arbitrator, and verifying what others disclose.

A bundle carries the genesis, the roster changes before the draft, the draft with its
ciphertext and content key, and its receipts, each with an inclusion proof in one
checkpoint that carries the witness quorum.  It is checked here only with the
protocol's own verifier (:func:`protocol.evidence.verify_evidence`), the one the
arbitrator runs.
"""

from __future__ import annotations

from pathlib import Path

from client.core import ClientCore, EnsureOpened, digits, fingerprint_digits
from client.errors import StateError, UsageError, VerificationError
from client.logsync import LogSync
from protocol.encoding import b64d, b64e
from protocol.errors import ProtocolError
from protocol.evidence import EvidenceBundle, EvidenceReport, Proven
from protocol.evidence import verify_evidence as _verify_evidence
from protocol.genesis import Genesis


class Evidence:
    """Evidence bundles for drafts addressed to this device, and their offline check."""

    def __init__(self, core: ClientCore, logsync: LogSync, *, ensure_opened: EnsureOpened) -> None:
        self.core = core
        self.logsync = logsync
        self._ensure_opened = ensure_opened

    async def disclose(self, index: int) -> EvidenceBundle:
        """Build an evidence bundle for a draft addressed to us (discloses its content key)."""
        core = self.core
        await self.logsync.sync()
        await self._ensure_opened(index)
        log = core.log
        header = log.draft(index)
        record = core.state.draft_record(index)
        if record is None or record.keys is None or record.ciphertext is None:
            raise StateError(f"draft {index} is not in the local cache")
        wrapped = b64d(record.keys[b64e(core.device_id)])
        content_key = core.keys.box.unwrap(wrapped)
        state = log.ledger.drafts[header.leaf]
        cp, text = await self.logsync.quorum_checkpoint(index)

        def proven(i: int) -> Proven:
            """The entry at ``i`` with its inclusion proof in the chosen checkpoint."""
            return Proven(
                index=i, entry=log.entries[i], proof=tuple(log.tree.inclusion_proof(i, cp.size))
            )

        bundle = EvidenceBundle(
            genesis=proven(0),
            roster=tuple(proven(i) for i in log.roster_indices if i < index),
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


def verify_evidence_bytes(data: bytes, talks: str) -> EvidenceReport:
    """Verify an evidence bundle against a pinned talks id (base64url) or fingerprint.

    A fingerprint cannot be turned back into a talks id, so the bundle's genesis supplies
    the candidate id and the fingerprint must match it; the protocol verifier then
    checks everything against that id.
    """
    talks_digits = fingerprint_digits(talks)
    if talks_digits is not None:
        try:
            bundle = EvidenceBundle.from_bytes(data)
            genesis = Genesis.from_bytes(bundle.genesis.entry)
        except ProtocolError as exc:
            raise VerificationError(f"evidence is invalid: {exc.code}: {exc.detail}") from exc
        if digits(genesis.fingerprint) != talks_digits:
            raise VerificationError(
                "evidence is for other talks (fingerprint mismatch)", code="wrong_talks"
            )
        pinned = bytes(genesis.talks_id)
    else:
        try:
            pinned = b64d(talks.strip(), length=32, what="talks id")
        except ProtocolError as exc:
            raise UsageError("--talks must be a talks fingerprint (40 digits) or talks id") from exc
    try:
        return _verify_evidence(data, pinned)
    except ProtocolError as exc:
        raise VerificationError(f"evidence does not verify: {exc.detail}", code=exc.code) from exc
