"""Client errors and alarms.

Everything the client library raises on purpose is a :class:`ClientError`.  Each kind
carries the CLI exit code it maps to, so ``docket`` can turn any failure into one line
and a stable status without a table of its own:

==========  ==============================================================
exit code   meaning
==========  ==============================================================
1           verification failure or alarm (:class:`Alarm`, :class:`VerificationError`)
2           usage error (:class:`UsageError`)
3           network or server error (:class:`NetworkError`, :class:`ServerError`)
4           local state or key store error (:class:`StateError`, :class:`KeystoreError`)
5           input over a size limit (``too_large``, from this client or the server)
==========  ==============================================================

Every error also has a stable ``code`` (the ``--json`` error object's ``code``): a
protocol or server code (:mod:`protocol.errors`, the server's problem+json codes), an
alarm name (:data:`ALARMS`), an auditor alarm code, or one of the client's own
:data:`CLI_CODES`.  Never a Python class name.

An **alarm** is the client's word for "the server or another party misbehaved and I can
prove it".  Alarms have a fixed vocabulary (:data:`ALARMS`), each with a plain-words
explanation for people who do not read protocol codes.  Protocol error codes raised while
verifying what the server sent are mapped onto alarms by :func:`alarm_for`; the client
records every alarm it raises in its local state, and after a ``rollback`` or ``fork``
it refuses to send until a person has looked (see :mod:`client.api`).
"""

from __future__ import annotations

from typing import ClassVar

from protocol.errors import ProtocolError

EXIT_OK = 0
EXIT_VERIFY = 1
EXIT_USAGE = 2
EXIT_NETWORK = 3
EXIT_STATE = 4
EXIT_TOO_LARGE = 5

CLI_CODES: dict[str, str] = {
    "usage": "the command was not given as it must be (an argument, an option, a role)",
    "state": "the home directory or its verified state is missing, unreadable or corrupt",
    "keystore": "the key store is missing or corrupt, or the passphrase is wrong",
    "network": "the server could not be reached or did not answer in time",
    "os_error": "a local file could not be read or written",
    "interrupted": "the command was interrupted (Ctrl-C)",
    "internal": "a bug: please report it with the command that caused it",
    "audit": "the demo's audit did not pass",
    "bad_invitation": "an invitation code that is cut short, mistyped or not an invitation",
    "bad_short_code": "a short invitation code that is mistyped (its check characters fail)",
    "invitation_substituted": (
        "the server answered a short invitation code with an invitation whose fingerprint "
        "differs from the one in the code"
    ),
    "bad_founding_token": "a founding token that is not the one 'docket-server init' printed",
    "bad_log_key": "a log key that is not the one 'docket-server init' printed",
}
"""The client's own error codes (beside protocol, server, alarm and audit codes)."""

ALARMS: dict[str, str] = {
    "forged": (
        "Something the server sent is not what its author signed: a signature does not "
        "verify, or a record, ciphertext or receipt was altered on the way."
    ),
    "key_change": (
        "A key is not the one pinned or expected: the talks genesis, a device key or a "
        "fingerprint differs from what this client trusted before."
    ),
    "unauthorised_member": (
        "Someone acted without the right: a roster change by a person without authority, "
        "a draft from a device outside the channel, or a device the roster does not know."
    ),
    "commitment_mismatch": (
        "A draft decrypted to content that does not match what the sender committed to: "
        "different recipients may have been shown different texts."
    ),
    "duplicate": ("A draft, message id or receipt appears twice: something was replayed."),
    "gap": (
        "Entries are missing or out of order: a sender's counter skipped or repeated, or "
        "an entry the server promised is not in the log where it said it would be."
    ),
    "withheld": (
        "The server logged a draft addressed to this device but refuses to deliver it "
        "(its wrapped key or ciphertext): it is keeping from you what the log says you "
        "were sent."
    ),
    "stale_log": (
        "The server is showing an out-of-date log: a draft names a roster state that is "
        "no longer current, or the server promised entries its checkpoints do not cover."
    ),
    "stale_view": (
        "The witnesses have not vouched for this client's view of the log recently "
        "enough: the server may be holding back newer entries, or the witnesses are "
        "offline.  Nothing was signed or sent."
    ),
    "stale_roster_claim": (
        "The server refused a draft as made on an old roster, but its own signed log "
        "shows no newer roster: it is trying to make this client re-seal, for example "
        "to a different set of keys.  Nothing was re-sent."
    ),
    "equivocation": (
        "A sender signed one draft but wrapped a key that does not open to the text it "
        "committed to, for at least one recipient: it showed different recipients "
        "different texts, or none at all."
    ),
    "broken_promise": (
        "The server signed a promise to log an entry at an index and did not keep it: "
        "its own signed log holds another entry there, or the witnesses saw the log stop "
        "short of it past the bound.  'docket disclose INDEX --broken-promise' exports "
        "the proof."
    ),
    "clock_anomaly": (
        "A time someone signed is impossible by this client's clock: a witness dated "
        "its cosignature in the future, or an entry is dated outside the checkpoints "
        "that bracket it.  Either that clock or this one is wrong; the view is not "
        "current until they agree."
    ),
    "rollback": (
        "The server presented a log smaller than one this client already verified: it "
        "is trying to take back entries it had published."
    ),
    "fork": (
        "The server presented two versions of the log that cannot both be true: it is "
        "showing different histories to different people."
    ),
}
"""Alarm name -> plain-words explanation."""

# Protocol error code -> alarm.  Codes not listed here (e.g. ``malformed`` from a
# truncated response) still mean the server sent something invalid; they map to
# ``forged`` through :func:`alarm_for`'s default.
_CODE_TO_ALARM: dict[str, str] = {
    "bad_signature": "forged",
    "malformed": "forged",
    "non_canonical": "forged",
    "too_deep": "forged",
    "too_large": "forged",
    "unknown_field": "forged",
    "missing_field": "forged",
    "wrong_type": "forged",
    "bad_value": "forged",
    "unsupported_version": "forged",
    "wrong_talks": "forged",
    "recipient_mismatch": "forged",
    "ciphertext_mismatch": "forged",
    "receipt_mismatch": "forged",
    "decryption_failed": "forged",
    "bad_evidence": "forged",
    "bad_checkpoint": "forged",
    "no_quorum": "forged",
    "bad_cosignature_time": "forged",
    "stale_view": "stale_view",
    "weak_key": "key_change",
    "unauthorised_change": "unauthorised_member",
    "unknown_device": "unauthorised_member",
    "not_a_member": "unauthorised_member",
    "not_a_recipient": "unauthorised_member",
    "roster": "unauthorised_member",
    "roster_conflict": "unauthorised_member",
    "commitment_mismatch": "commitment_mismatch",
    "duplicate": "duplicate",
    "bad_counter": "gap",
    "bad_sequence": "gap",
    "bad_lineage": "gap",
    "stale_roster": "stale_log",
    "rollback": "rollback",
    "fork": "fork",
    "bad_proof": "fork",
}


def alarm_for(code: str) -> str:
    """The alarm a protocol error code raises when it is found in server-supplied data."""
    return _CODE_TO_ALARM.get(code, "forged")


class ClientError(Exception):
    """Root of every error the client raises on purpose."""

    exit_code: ClassVar[int] = EXIT_STATE
    code: str = "state"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ClientError):
    """The caller asked for something that cannot be done as asked (bad argument,
    wrong role, missing prerequisite).  ``code`` names the refusal where a caller may
    branch on it; it defaults to ``usage``."""

    exit_code = EXIT_USAGE
    code = "usage"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code or type(self).code


class StateError(ClientError):
    """The local home directory or verified state is missing, unreadable or corrupt."""

    exit_code = EXIT_STATE


class KeystoreError(StateError):
    """The key store is missing, corrupt, or the passphrase is wrong."""

    code = "keystore"


class NetworkError(ClientError):
    """The server could not be reached, or did not answer in time."""

    exit_code = EXIT_NETWORK
    code = "network"


class ServerError(NetworkError):
    """The server answered with an error (``application/problem+json``)."""

    def __init__(self, status: int, code: str, detail: str, *, request_id: str = "") -> None:
        message = f"server error {status} {code}: {detail}" if detail else code
        if request_id:
            # The id the server logged this request under: what a user quotes to its host.
            message += f" (request id {request_id})"
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail
        self.request_id = request_id


class VerificationError(ClientError):
    """Something failed verification that is not (or not yet) the server's fault: an
    evidence bundle that does not prove its claim, a checkpoint without the quorum."""

    exit_code = EXIT_VERIFY

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


class TooLargeInput(ClientError):
    """Input over a size limit; the message states the limit."""

    exit_code = EXIT_TOO_LARGE
    code = "too_large"


class Alarm(ClientError):
    """Proof of misbehaviour by the server or a participant (see :data:`ALARMS`)."""

    exit_code = EXIT_VERIFY

    def __init__(self, name: str, detail: str, *, index: int | None = None) -> None:
        if name not in ALARMS:
            raise ValueError(f"unknown alarm {name!r}")  # programming error
        where = f" at log index {index}" if index is not None else ""
        super().__init__(f"ALARM {name}{where}: {detail}")
        self.name = name
        self.detail = detail
        self.index = index

    @property
    def explanation(self) -> str:
        """The plain-words meaning of this alarm."""
        return ALARMS[self.name]

    @classmethod
    def from_protocol(
        cls, exc: ProtocolError, *, index: int | None = None, what: str = ""
    ) -> Alarm:
        """The alarm for a protocol error found in data the server supplied."""
        prefix = f"{what}: " if what else ""
        return cls(alarm_for(exc.code), f"{prefix}{exc.code}: {exc.detail}", index=index)
