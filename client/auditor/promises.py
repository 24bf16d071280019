"""Broken promises handed to the auditor: each bundle a client exported
(``docket disclose INDEX --broken-promise``) is verified with the arbitrator's verifier
(:func:`protocol.brokenpromise.verify_broken_promise`) against the pinned talks and
becomes a ``broken_promise`` alarm at the promised index.  Pure, like the rest of the
auditor: bytes in, alarms out; the verifier's clock, when given, comes from the caller."""

from __future__ import annotations

from collections.abc import Sequence

from client.auditor.report import BROKEN_PROMISE, Alarm
from protocol.brokenpromise import SUBSTITUTED, verify_broken_promise
from protocol.encoding import b64e
from protocol.errors import ProtocolError


def promise_alarms(
    bundles: Sequence[bytes], pinned_talks: bytes, *, now: int | None = None
) -> list[Alarm]:
    """One ``broken_promise`` alarm per bundle that proves its claim; a bundle that does
    not becomes an alarm with the verifier's code (``bad_evidence``, ``not_misbehaviour``),
    so the report says what was handed in and why it proves nothing."""
    alarms: list[Alarm] = []
    for data in bundles:
        try:
            report = verify_broken_promise(data, pinned_talks, now=now)
        except ProtocolError as exc:
            alarms.append(Alarm(code=exc.code, reason=f"broken-promise bundle: {exc.detail}"))
            continue
        if report.kind == SUBSTITUTED:
            assert report.logged_leaf is not None
            why = (
                f"the log promised leaf {b64e(report.promised_leaf)} at this index and signed "
                f"a checkpoint of {report.checkpoint_size} entries holding "
                f"{b64e(report.logged_leaf)} there"
            )
        else:
            why = (
                f"the log promised an entry at this index and, more than the bound after, "
                f"the witnesses ({', '.join(report.cosigners)}) cosigned its checkpoint of "
                f"{report.checkpoint_size} entries"
            )
        alarms.append(Alarm(code=BROKEN_PROMISE, reason=why, index=report.index))
    return alarms
