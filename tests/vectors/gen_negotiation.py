"""Generate ``tests/vectors/negotiation.json``: known answers for the negotiation's acts.

Run from the repository root::

    python -m tests.vectors.gen_negotiation          # rewrite the file
    python -m tests.vectors.gen_negotiation --check  # exit 1 if the file is stale

One small set of talks from the fixed seed ``vectors/negotiation`` (keys, nonces and
ephemeral keys from :func:`tests.helpers.make_rng`; time is a counter): the mediator
opens round 1 and a call for proposals from north and south; both table sealed
proposals, commit, the call is released and both reveal; a text is initialled by both
heads and agreed; the round is closed and countersigned by both heads.  ``log`` is every
entry (each of the record types ``round.open``, ``round.close``, ``round.countersign``,
``initial``, ``initial.withdraw``, ``call.open``, ``proposal.commit``, ``call.release``
and ``proposal.reveal`` occurs), ``state`` the families' state after the replay, and
``sealed`` a sealed proposal with its key, plaintext and commitment, and ``non_paper``
a non-paper (the last entry) with its wrapped keys, ciphertext and one recipient's
private device key.

Negative cases replay the first ``prefix`` entries and give an ``entry`` the ledger must
refuse with ``error``; a case with ``tree`` is accepted by the ledger and refused by a
holder of the Merkle tree (:func:`protocol.negotiation.check_tree_claim`).

Bytes are unpadded base64url, as on the wire.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from protocol import crypto
from protocol.encoding import JSONValue, b64e, parse
from protocol.envelope import Payload, keys_to_json, seal
from protocol.keys import DeviceKeys
from protocol.negotiation import SEALED_TYPE, seal_proposal
from protocol.records import DraftId, MessageId, TalksId
from tests.protocol.builders import Sent, Talks
from tests.vectors.writer import write_or_check

OUTPUT = Path(__file__).parent / "negotiation.json"


def _entry(data: bytes) -> JSONValue:
    return parse(data)


def _initial(sent: Sent) -> dict[str, JSONValue]:
    h = sent.sealed.header
    return {
        "channel": h.channel,
        "commit": b64e(h.commit),
        "draft": b64e(h.draft),
        "entry": b64e(h.leaf),
        "index": sent.index,
    }


def build() -> dict[str, Any]:  # noqa: PLR0915 - one scenario, told in order
    t = Talks("vectors/negotiation")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    med, nh, sh, na = (t.people[m].device for m in ("med", "nh", "sh", "na"))
    negative: list[dict[str, JSONValue]] = []

    def refuse(name: str, by: DeviceKeys, kind: str, body: dict[str, JSONValue], error: str,
               *, tree: bool = False) -> None:  # fmt: skip
        act = t.act(by, kind, body, apply=False)
        case: dict[str, JSONValue] = {
            "entry": _entry(act.to_bytes()), "error": error, "name": name, "prefix": t.ledger.size,
        }  # fmt: skip
        if tree:
            case["tree"] = True
        negative.append(case)

    refuse("round-open-by-a-head", nh, "round.open", {"channel": None, "round": 1}, "not_entitled")
    t.act(med, "round.open", {"channel": None, "round": 1})
    deadline = t.time + 1000
    call_body: dict[str, JSONValue] = {
        "call": 1, "channel": "plenary", "deadline": deadline, "delegations": ["north", "south"],
    }  # fmt: skip
    t.act(med, "call.open", call_body)
    sealed_case: dict[str, JSONValue] = {}
    proposals: dict[str, tuple[Sent, bytes]] = {}
    for member, device, text in (("na", na, "North proposes May."), ("sh", sh, "South: March.")):
        key = crypto.new_content_key(t.rng)
        plaintext = Payload(title="Proposal", body=text).to_bytes()
        sealed = seal_proposal(key, plaintext, talks=t.talks_id, call=1, rng=t.rng)
        outer = Payload(title="Sealed proposal for call 1", file_name="proposal.sealed",
                        media_type=SEALED_TYPE, file_data=sealed)  # fmt: skip
        sent = t.send(device, "plenary", payload=outer)
        commit = crypto.commitment(key, plaintext)
        body: dict[str, JSONValue] = {
            "call": 1, "commit": b64e(commit), "entry": b64e(sent.leaf), "index": sent.index,
        }  # fmt: skip
        if member == "na":
            sealed_case = {
                "call": 1, "commit": b64e(commit), "key": b64e(key),
                "plaintext": b64e(plaintext), "sealed": b64e(sealed), "talks": b64e(t.talks_id),
            }  # fmt: skip
            refuse("proposal-revealed-before-its-commit", device, "proposal.reveal",
                   {"call": 1, "entry": b64e(sent.leaf), "keys": {}}, "bad_call")  # fmt: skip
        t.act(device, "proposal.commit", body)
        proposals[member] = (sent, key)
        if member == "na":
            keys = {d: crypto.wrap_key(key, t.roster.channel_devices("plenary")[d].enc_pk, t.rng)
                    for d in sent.sealed.header.recipients}  # fmt: skip
            refuse("proposal-opened-before-the-release", device, "proposal.reveal",
                   {"call": 1, "entry": b64e(sent.leaf), "keys": keys_to_json(keys)},
                   "not_released")  # fmt: skip
    refuse("release-by-a-non-mediator", nh, "call.release", {"call": 1}, "not_entitled")
    t.act(med, "call.release", {"call": 1})
    late = t.send(na, "plenary", "late")
    refuse("late-proposal", na, "proposal.commit", {
        "call": 1, "commit": b64e(bytes(32)), "entry": b64e(late.leaf), "index": late.index,
    }, "late_proposal")  # fmt: skip
    for member in ("na", "sh"):
        sent, key = proposals[member]
        devices = t.roster.channel_devices("plenary")
        keys = {d: crypto.wrap_key(key, devices[d].enc_pk, t.rng)
                for d in sent.sealed.header.recipients}  # fmt: skip
        t.act(t.people[member].device, "proposal.reveal",
              {"call": 1, "entry": b64e(sent.leaf), "keys": keys_to_json(keys)})  # fmt: skip
    v1 = t.send(na, "plenary", "Art. 1. The bridge reopens in April.")
    refuse("initial-by-a-non-head", na, "initial", _initial(v1), "not_entitled")
    t.act(nh, "initial", _initial(v1))
    withdraw = {k: v for k, v in _initial(v1).items() if k not in ("commit", "index")}
    t.act(nh, "initial.withdraw", withdraw)
    t.act(nh, "initial", _initial(v1))
    v0 = t.send(na, "plenary", "Art. 2. Draft.")
    v0b = t.send(na, "plenary", "Art. 2. Draft, amended.", reply_to=v0)
    refuse("initial-on-another-version", sh, "initial", _initial(v0), "bad_initial")
    assert v0b.index > v0.index
    t.act(sh, "initial", _initial(v1))
    refuse("withdraw-an-agreed-text", sh, "initial.withdraw", withdraw, "bad_initial")
    size = t.ledger.size
    close: dict[str, JSONValue] = {
        "channel": None, "round": 1, "root": b64e(t.tree.root(size)), "size": size,
    }  # fmt: skip
    ghost = dict(close, size=size + 3)
    refuse("round-record-over-a-size-the-log-never-had", med, "round.close", ghost,
           "unknown_checkpoint")  # fmt: skip
    forged = dict(close, root=b64e(crypto.sha256(b"never this log's root")))
    refuse("round-record-over-a-root-the-log-never-had", med, "round.close", forged,
           "unknown_checkpoint", tree=True)  # fmt: skip
    t.act(med, "round.close", close)
    refuse("countersign-by-a-non-head", na, "round.countersign", close, "not_entitled")
    t.act(nh, "round.countersign", close)
    t.act(sh, "round.countersign", close)
    # A non-paper from the mediator, opened by the south's head.
    text = "Non-paper: a joint commission in both capitals?"
    np_payload = Payload(title="Non-paper", body=text)
    np_sealed = seal(
        sender=med, talks=TalksId(t.talks_id), channel="plenary",
        counter=t.counters.get(med.device_id, 0) + 1, msg=MessageId(t.rng(16)),
        draft=DraftId(t.rng(16)), version=1, parents=(), roster=t.roster.head,
        recipients=t.roster.channel_devices("plenary"), payload=np_payload, time=t.tick(),
        rng=t.rng, non_paper=True,
    )  # fmt: skip
    np_sent = t.log_draft(np_sealed, np_payload, med)
    non_paper: dict[str, JSONValue] = {
        "body": text, "ciphertext": b64e(np_sealed.ciphertext), "index": np_sent.index,
        "keys": keys_to_json(np_sealed.keys), "recipient_private": b64e(sh.private_bytes()),
    }  # fmt: skip
    state = {name: t.ledger.act_state(name) for name in ("rounds", "initials", "calls")}
    return {
        "description": "Known answers for negotiation acts (tests/vectors/gen_negotiation.py)",
        "log": [_entry(e) for e in t.entries],
        "negative": negative,
        "non_paper": non_paper,
        "sealed": sealed_case,
        "state": {
            "agreed": [a.to_json() for a in state["initials"].agreed.values()],
            "calls": [c.to_json() for c in state["calls"].calls],
            "rounds": [r.to_json() for r in state["rounds"].all()],
        },
    }


def render() -> str:
    """The exact text of ``negotiation.json``."""
    return json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(OUTPUT, render(), "tests.vectors.gen_negotiation", argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
