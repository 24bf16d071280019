"""The negotiation in the audit: drafts and receipts grouped by round, agreed texts,
calls for proposals and who never revealed, and the non-papers (by position only).

Everything comes from the replayed ledger (:mod:`protocol.negotiation`'s families),
so the auditor reports what server and clients enforced.  A draft belongs to the round
of its channel open when it was logged, else to the round of the whole talks (PROTOCOL.md
§8c); a receipt belongs to the round it was logged in, by the same rule applied to its
draft's channel.
"""

from __future__ import annotations

from protocol.encoding import JSONValue
from protocol.ledger import Ledger
from protocol.negotiation import CallsState, InitialsState, Round, RoundsState


def _key(r: Round | None) -> str:
    if r is None:
        return "outside any round"
    return f"round {r.number}" + ("" if r.channel is None else f" of {r.channel}")


def negotiation_summary(ledger: Ledger) -> dict[str, JSONValue]:
    """What the negotiation's families hold after the replay, in JSON values."""
    rounds = ledger.act_state("rounds")
    initials = ledger.act_state("initials")
    calls = ledger.act_state("calls")
    assert isinstance(rounds, RoundsState) and isinstance(initials, InitialsState)
    assert isinstance(calls, CallsState)
    groups: dict[str, dict[str, int]] = {}
    non_papers: list[JSONValue] = []
    for state in sorted(ledger.drafts.values(), key=lambda s: s.index):
        channel = state.header.channel
        group = groups.setdefault(_key(rounds.round_of(state.index, channel)), {})
        group["drafts"] = group.get("drafts", 0) + 1
        for index in state.receipt_indices:
            g = groups.setdefault(_key(rounds.round_of(index, channel)), {})
            g["receipts"] = g.get("receipts", 0) + 1
        if state.header.mode is not None:
            non_papers.append(
                {"channel": channel, "index": state.index, "sender": state.sender_member,
                 "size": state.header.ct_len}
            )  # fmt: skip
    return {
        "agreed": [
            a.to_json() for a in sorted(initials.agreed.values(), key=lambda a: a.agreed_at)
        ],
        "by_round": {k: dict(sorted(v.items())) for k, v in groups.items()},
        "calls": [c.to_json() for c in calls.calls],
        "non_papers": non_papers,
        "rounds": [r.to_json() for r in rounds.all()],
        "unrevealed": [
            {"call": c.number, "delegation": p.delegation, "index": p.index, "member": p.member}
            for c, p in calls.unrevealed()
        ],
    }


def render_lines(summary: dict[str, JSONValue]) -> list[str]:
    """The human lines of :func:`negotiation_summary` (empty when there is nothing)."""
    out: list[str] = []
    rounds, by_round = summary.get("rounds"), summary.get("by_round")
    if isinstance(rounds, list) and rounds:
        out += ["", "Rounds"]
        for r in rounds:
            assert isinstance(r, dict)
            closed = "open" if r["closed_at"] is None else f"closed over size {r['size']}"
            signed = r["countersigns"]
            names = ", ".join(sorted(signed)) if isinstance(signed, dict) and signed else "nobody"
            scope = r["channel"] or "whole talks"
            out.append(f"  round {r['round']} ({scope}): {closed}; countersigned by {names}")
    if isinstance(by_round, dict) and (isinstance(rounds, list) and rounds):
        for key, counts in by_round.items():
            assert isinstance(counts, dict)
            out.append(
                f"  {key:<28} drafts {counts.get('drafts', 0):>6}  "
                f"receipts {counts.get('receipts', 0):>6}"
            )
    for title, field in (("Agreed texts", "agreed"), ("Non-papers", "non_papers")):
        items = summary.get(field)
        if isinstance(items, list) and items:
            out += ["", f"{title} ({len(items)})"]
            out.extend(_item_line(field, item) for item in items)
    unrevealed = summary.get("unrevealed")
    if isinstance(unrevealed, list) and unrevealed:
        out += ["", f"Proposals committed but never revealed ({len(unrevealed)})"]
        for u in unrevealed:
            assert isinstance(u, dict)
            out.append(f"  call {u['call']}: {u['delegation']} ({u['member']}), draft {u['index']}")
    return out


def _item_line(field: str, item: JSONValue) -> str:
    assert isinstance(item, dict)
    where = f"  index {item['index']} in {item['channel']}"
    if field == "agreed":
        initials = item["initials"]
        names = ", ".join(sorted(initials)) if isinstance(initials, dict) else ""
        return f"{where}: agreed at {item['agreed_at']} by {names}"
    return f"{where} from {item['sender']}, {item['size']} bytes (content unattributable)"
