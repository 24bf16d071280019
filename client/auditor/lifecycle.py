"""The audit's lifecycle section: revocations, what was signed after a declared
compromise, and history grants (docs/PROTOCOL.md section 5a).

A revoked device's entries logged before its revocation are valid (the ledger accepted
them, and still does on every replay); those at or after the index its revocation
declares the compromise from are listed as "signed after a declared compromise", and
those before it as valid.  The replay records, per device, the indices of the receipts
it signed (drafts carry their index; acts are listed by the grant section), which is
what the flag needs: an auditor cannot know in advance which device will be revoked.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from protocol.encoding import JSONValue, b64e
from protocol.grants import FAMILY as GRANTS
from protocol.grants import GrantState
from protocol.keys import DeviceId
from protocol.ledger import Ledger

SIGNED_AFTER_COMPROMISE = "signed after a declared compromise"


@dataclass(slots=True, kw_only=True)
class LifecycleReport:
    """Revocations (with the entries flagged under each) and history grants."""

    revocations: list[dict[str, JSONValue]] = field(default_factory=list)
    grants: list[dict[str, JSONValue]] = field(default_factory=list)

    def to_json(self) -> dict[str, JSONValue]:
        return {"grants": list(self.grants), "revocations": list(self.revocations)}

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.revocations:
            out += ["", "Revocations"]
            for r in self.revocations:
                flagged = r["flagged"]
                assert isinstance(flagged, list)
                out.append(
                    f"  {r['member']} device {str(r['device'])[:8]}: revoked at index {r['at']} "
                    f"by {r['by']}, declared compromised since index {r['since']}; "
                    f"{len(flagged)} entr{'y' if len(flagged) == 1 else 'ies'} "
                    f"{SIGNED_AFTER_COMPROMISE}{': ' if flagged else ''}"
                    + ", ".join(str(f) for f in flagged)
                    + f"; {r['valid_before']} earlier entr"
                    + ("y" if r["valid_before"] == 1 else "ies")
                    + " valid"
                )
        if self.grants:
            out += ["", "History grants"]
            for g in self.grants:
                drafts = g["drafts"]
                assert isinstance(drafts, list)
                out.append(
                    f"  index {g['index']}: {g['granted_by']} granted {g['member']}'s device "
                    f"{str(g['device'])[:8]} {len(drafts)} draft(s) of {g['channel']} "
                    f"up to index {g['upto']}; {g['receipts']} receipted through the grant"
                )
        return out


def lifecycle_report(ledger: Ledger, receipts_by: dict[DeviceId, array[int]]) -> LifecycleReport:
    """Build the section from the replayed ledger and the per-device receipt indices."""
    report = LifecycleReport()
    roster = ledger.roster
    for dev_id, rev in sorted(roster.revoked.items(), key=lambda kv: kv[1].at):
        signed = sorted(
            [s.index for s in ledger.drafts.values() if s.header.sender == dev_id]
            + [i for i in receipts_by.get(dev_id, ()) if i < rev.at]
        )
        flagged: list[JSONValue] = [i for i in signed if i >= rev.since]
        report.revocations.append(
            {
                "at": rev.at,
                "by": rev.by,
                "device": b64e(dev_id),
                "flagged": flagged,
                "member": rev.member,
                "since": rev.since,
                "valid_before": len(signed) - len(flagged),
            }
        )
    grants = ledger.act_state(GRANTS.name)
    if isinstance(grants, GrantState):
        for at, grant in sorted(grants.grants.items()):
            readers = grants.readers.get(grant.keys[0][0], {})
            reader = readers.get(grant.device)
            report.grants.append(
                {
                    "channel": grant.channel,
                    "device": b64e(grant.device),
                    "drafts": [i for i, _ in grant.keys],
                    "granted_by": "" if reader is None else reader.granted_by,
                    "index": at,
                    "member": "" if reader is None else reader.member,
                    "receipts": sum(
                        1 for i, _ in grant.keys if grant.device in grants.receipts.get(i, {})
                    ),
                    "upto": grant.upto,
                }
            )
    return report
