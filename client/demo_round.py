"""The round of ``docket demo``: simultaneous tabling, a redline, a compromise agreed,
the round closed and countersigned, the audit and an agreed-text bundle verified.

Told after the demo's drafts (:mod:`client.demo`), on its plenary channel, with its
people and clients; see PROTOCOL.md §8c for the acts it logs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from client import redline
from client.api import verify_agreed_bytes
from protocol.envelope import Payload

if TYPE_CHECKING:
    from client.demo import Demo

HEADS = ("north-head", "south-head", "east-head")
PROPOSALS = {
    "north-head": "Detainees are exchanged in two phases of 30 days, lists verified by the ICRC.",
    "south-head": "Detainees are exchanged in one phase of 14 days, lists verified by the ICRC.",
}
COMPROMISE = (
    "Detainees are exchanged in two phases of 14 days each, lists verified by the ICRC "
    "and published by the observer mission."
)


async def play_round(demo: Demo, fingerprint: str) -> dict[str, Any]:
    """Play the round; narrate through ``demo.say``; return its part of the summary."""
    say = demo.say
    envoy = demo.c("envoy").negotiation
    say("")
    say("10. A round on the plenary: simultaneous tabling, redline, agreement")
    opened = await envoy.open_round("plenary")
    say(f"  [{opened.index:>3}] envoy opened round 1 of the plenary")
    deadline = int(time.time() * 1000) + 600_000
    call = await envoy.open_call("plenary", ["north", "south"], deadline)
    say(f"  [{call.index:>3}] envoy called North and South for sealed proposals (10 minutes)")
    tabled = {}
    for head, text in PROPOSALS.items():
        payload = Payload(title=f"Detainee exchange: {head.split('-')[0]} proposal", body=text)
        sent, committed = await demo.c(head).negotiation.propose(
            1, payload, now=int(time.time() * 1000)
        )
        tabled[head] = sent.index
        say(
            f"  [{sent.index:>3}] {head} tabled a sealed proposal (committed at "
            f"{committed.index}); nobody else can open it yet"
        )
    released = await envoy.release(1)
    say(f"  [{released.index:>3}] envoy released the call: both had committed")
    for head in PROPOSALS:
        revealed = await demo.c(head).negotiation.reveal(1)
        say(f"  [{revealed.index:>3}] {head} revealed its proposal's key to the plenary")
    east = demo.c("east-head").negotiation
    texts = {}
    for head, index in tabled.items():
        _, proposal, payload = await east.open_proposal(index)
        texts[head] = payload.body or ""
        say(
            f"  east-head opened {head}'s proposal: committed at {proposal.committed_at}, "
            "before the release, and matching its commitment"
        )
    ops = redline.words(texts["north-head"], texts["south-head"])
    say("  redline, North -> South: " + redline.plain(ops))
    agreed_draft = await demo.send(
        "envoy", "plenary", Payload(title="Detainee exchange: compromise", body=COMPROMISE)
    )
    for head in HEADS:
        await demo.c(head).inbox()
        done = await demo.c(head).negotiation.initial(agreed_draft.index)
        say(f"  [{done.index:>3}] {head} initialled the compromise ad referendum")
    await demo.c("envoy").sync()
    [agreed] = [a for a in envoy.agreed() if a.index == agreed_draft.index]
    say(f"  AGREED by {', '.join(sorted(agreed.initials))} at log position {agreed.agreed_at}")
    closed = await envoy.close_round("plenary")
    say(f"  [{closed.index:>3}] envoy closed round 1 over the log up to size {closed.index}")
    for head in HEADS:
        signed = await demo.c(head).negotiation.countersign(1, "plenary")
        say(f"  [{signed.index:>3}] {head} countersigned round 1")
    for head in HEADS:
        await demo.c(head).sync()
    report = await demo.c("monitor").audit()
    say(f"  audit by the observer mission: {'OK' if report.ok else 'FAILED'}")
    bundle = await demo.c("east-head").disclose_agreed(agreed_draft.index)
    path = demo.workdir / "agreed-compromise.json"
    path.write_bytes(bundle.to_bytes())
    verified = verify_agreed_bytes(path.read_bytes(), fingerprint)
    say(
        f"  VERIFIED agreed text: {', '.join(sorted(verified.initials))} agreed exactly "
        f"{verified.text.payload.title!r} at log position {verified.agreed_at} ({path.name})"
    )
    return {
        "agreed": agreed.to_json(),
        "agreed_bundle": str(path),
        "audit_ok": report.ok,
        "proposals": tabled,
        "round": {"closed": closed.index, "opened": opened.index},
    }
