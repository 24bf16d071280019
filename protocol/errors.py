"""One error hierarchy for everything the protocol rejects.

Every failure the protocol can detect is a subclass of :class:`ProtocolError` with a
stable machine-readable ``code`` and an HTTP ``status`` hint.  Parsers and verifiers
raise only these; they never leak ``ValueError``, ``KeyError``, ``UnicodeError`` or a
library exception (a property test feeds arbitrary input to every parser to prove it).

The codes are part of the wire contract: the server puts them in problem+json bodies,
the client's alarms and the CLI print them.  Never rename a code.
"""

from __future__ import annotations

from typing import ClassVar


class ProtocolError(Exception):
    """Root of every error the protocol raises.  Abstract: raise a subclass."""

    code: ClassVar[str] = "protocol_error"
    status: ClassVar[int] = 400

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} must define its own stable code")


# --- input shape (400) ---------------------------------------------------------------


class MalformedError(ProtocolError):
    """Bytes that are not valid input at all: bad JSON, wrong types, bad base64."""

    code = "malformed"
    status = 400


class NonCanonicalError(MalformedError):
    """Valid JSON/base64 that is not in the one canonical form we accept."""

    code = "non_canonical"


class TooLargeError(MalformedError):
    """Input over a size limit."""

    code = "too_large"
    status = 413


class TooDeepError(MalformedError):
    """JSON nested deeper than allowed."""

    code = "too_deep"


# --- invalid content (422) -----------------------------------------------------------


class InvalidError(ProtocolError):
    """Well-formed input whose content is invalid."""

    code = "invalid"
    status = 422


class UnknownFieldError(InvalidError):
    code = "unknown_field"


class MissingFieldError(InvalidError):
    code = "missing_field"


class WrongTypeError(InvalidError):
    code = "wrong_type"


class BadValueError(InvalidError):
    code = "bad_value"


class BadTimeError(BadValueError):
    """A record whose ``time`` is too far from the clock of the party checking it."""

    code = "bad_time"


class UnsafeTextError(BadValueError):
    """A title or file name with control, format or bidi characters (see
    :mod:`protocol.names`)."""

    code = "unsafe_text"


class BadNameError(BadValueError):
    """A display name that breaks the name rules of :mod:`protocol.names`: control,
    format, bidi or invisible characters, not NFC, empty or too long."""

    code = "bad_name"


class BadSignatureError(InvalidError):
    """A signature that does not verify under the claimed key and context."""

    code = "bad_signature"


class WeakKeyError(InvalidError):
    """A public key that is not a valid, canonical, non-degenerate curve point."""

    code = "weak_key"


class UnsupportedVersionError(InvalidError):
    code = "unsupported_version"


class WrongTalksError(InvalidError):
    """An object that names other talks than the ones pinned."""

    code = "wrong_talks"


# --- roster --------------------------------------------------------------------------


class RosterError(InvalidError):
    code = "roster"


class StaleRosterError(RosterError):
    """A change or draft computed from a roster state that is not the current one."""

    code = "stale_roster"
    status = 409


class UnauthorisedChangeError(RosterError):
    """A roster or channel change whose author lacks the authority."""

    code = "unauthorised_change"
    status = 403


class UnknownDeviceError(RosterError):
    """A signer or recipient device that the roster does not know (or no longer has)."""

    code = "unknown_device"


class RosterConflictError(RosterError):
    """A change that contradicts the roster (existing id, missing target, ...)."""

    code = "roster_conflict"
    status = 409


class ConfusableNameError(RosterConflictError):
    """A new name whose UTS #39 confusable skeleton equals an existing name's of the
    same kind in the roster (see :mod:`protocol.names`)."""

    code = "confusable_name"


class RevokedDeviceError(UnknownDeviceError):
    """A signer whose device was revoked after a declared compromise (it never returns)."""

    code = "revoked_device"
    status = 403


# --- drafts and receipts -------------------------------------------------------------


class RecipientSetMismatchError(InvalidError):
    """A draft whose recipient set is not exactly the channel's device set."""

    code = "recipient_mismatch"


class NotARecipientError(InvalidError):
    code = "not_a_recipient"
    status = 403


class DecryptionError(InvalidError):
    """Any failure to unwrap or decrypt.  Deliberately opaque: one error for all causes."""

    code = "decryption_failed"


class CommitmentMismatchError(InvalidError):
    """Decrypted content that does not match the commitment the sender signed."""

    code = "commitment_mismatch"


class CiphertextMismatchError(InvalidError):
    """Ciphertext whose hash or length differs from the signed header."""

    code = "ciphertext_mismatch"


class ReceiptMismatchError(InvalidError):
    """A receipt not bound to the draft it claims to answer."""

    code = "receipt_mismatch"


# --- log, proofs, checkpoints --------------------------------------------------------


class ProofError(InvalidError):
    """An inclusion or consistency proof that does not verify."""

    code = "bad_proof"


class CheckpointError(InvalidError):
    """A checkpoint or cosignature that is malformed or does not verify."""

    code = "bad_checkpoint"


class QuorumError(CheckpointError):
    """A checkpoint without the witness cosignatures the genesis policy requires."""

    code = "no_quorum"


class StaleViewError(QuorumError):
    """A view whose witness quorum is not fresh enough to act on (seal, sign a change
    or a receipt): the cosignatures are older than the policy's ``max_age``."""

    code = "stale_view"
    status = 409


class CosignatureTimeError(CheckpointError):
    """A cosignature dated too far in the future, older than the last one seen from
    the same witness, or (where freshness is required) older than ``max_age``."""

    code = "bad_cosignature_time"


class RollbackError(InvalidError):
    """A checkpoint smaller than one already verified."""

    code = "rollback"
    status = 409


class ForkError(InvalidError):
    """Two checkpoints that cannot both describe one append-only log."""

    code = "fork"
    status = 409


class EvidenceError(InvalidError):
    """An evidence bundle that does not prove what it claims."""

    code = "bad_evidence"


class NotMisbehaviourError(EvidenceError):
    """A misbehaviour bundle whose disclosed content key opens the committed text: the
    sender did what it signed, so the bundle proves nothing against it."""

    code = "not_misbehaviour"


# --- log semantics -------------------------------------------------------------------


class DuplicateError(InvalidError):
    """A message id, receipt or draft id that was already logged."""

    code = "duplicate"
    status = 409


class CounterError(InvalidError):
    """A per-sender counter that skips or repeats a value."""

    code = "bad_counter"
    status = 409


class LineageError(InvalidError):
    """A draft version whose parents or version number do not fit its draft's history."""

    code = "bad_lineage"


class NotAMemberError(InvalidError):
    """A sender or reader who is not a member of the channel."""

    code = "not_a_member"
    status = 403


class SequenceError(InvalidError):
    """An entry out of place in the log (e.g. a second genesis)."""

    code = "bad_sequence"


# --- negotiation (rounds, initials, calls for proposals: protocol.negotiation) ---------


class NotEntitledError(InvalidError):
    """A negotiation act by someone whose role does not allow it (a round or release by
    a non-mediator, an initial or countersignature by a non-head)."""

    code = "not_entitled"
    status = 403


class RoundError(InvalidError):
    """A round act that does not fit the rounds logged so far (closing a round that is
    not open, opening one while another is open, countersigning twice)."""

    code = "bad_round"
    status = 409


class UnknownCheckpointError(InvalidError):
    """A round record over a log size or root this log never had."""

    code = "unknown_checkpoint"
    status = 409


class InitialError(InvalidError):
    """An initial or withdrawal that does not name the current version exactly (another
    version, another commitment, an agreed text, an initial twice or none to withdraw)."""

    code = "bad_initial"
    status = 409


class CallError(InvalidError):
    """A call-for-proposals act that does not fit the call (unknown call, a delegation
    not named, a second proposal, an early release)."""

    code = "bad_call"
    status = 409


class LateProposalError(CallError):
    """A sealed proposal committed after its call was released or its deadline passed."""

    code = "late_proposal"


class NotReleasedError(CallError):
    """A sealed proposal revealed before its call was released."""

    code = "not_released"


class NonPaperError(InvalidError):
    """A non-paper where attributable content is required (an evidence bundle, a
    disclosure): a non-paper proves its content to its recipients only."""

    code = "non_paper"
    status = 422


class BadTagError(InvalidError):
    """A non-paper whose deniable tag for this recipient does not verify (the sender or
    the host altered it; which one, nobody can prove)."""

    code = "bad_tag"
