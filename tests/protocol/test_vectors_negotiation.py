"""Check ``tests/vectors/negotiation.json`` against the code, with the protocol API only
(no test builder), and that the generator still reproduces the file byte for byte."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from protocol.acts import Act
from protocol.encoding import b64d, canonical
from protocol.envelope import DraftHeader, keys_from_json, open_draft
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.keys import DeviceKeys
from protocol.ledger import Ledger
from protocol.merkle import MemoryTree
from protocol.negotiation import (
    CallsState,
    InitialsState,
    RoundsState,
    check_tree_claim,
    open_proposal,
)
from tests.vectors import gen_negotiation

VECTORS_PATH = Path(__file__).parent.parent / "vectors" / "negotiation.json"
V: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
ENTRIES = [canonical(e) for e in V["log"]]
GENESIS_TALKS = Genesis.from_bytes(ENTRIES[0]).talks_id


def replay(upto: int) -> tuple[Ledger, MemoryTree]:
    ledger = Ledger.from_genesis_bytes(ENTRIES[0])
    tree = MemoryTree.from_entries(ENTRIES[:1])
    for data in ENTRIES[1:upto]:
        check_tree_claim(Act.from_bytes(data) if b'"t":"act"' in data else None,
                         ledger.size, tree.root)  # fmt: skip
        ledger.apply(data)
        tree.append(data)
    return ledger, tree


def test_the_log_replays_to_the_recorded_state() -> None:
    ledger, _ = replay(len(ENTRIES))
    rounds, initials, calls = (ledger.act_state(n) for n in ("rounds", "initials", "calls"))
    assert isinstance(rounds, RoundsState) and isinstance(initials, InitialsState)
    assert isinstance(calls, CallsState)
    assert [r.to_json() for r in rounds.all()] == V["state"]["rounds"]
    assert [a.to_json() for a in initials.agreed.values()] == V["state"]["agreed"]
    assert [c.to_json() for c in calls.calls] == V["state"]["calls"]


@pytest.mark.parametrize("case", V["negative"], ids=[c["name"] for c in V["negative"]])
def test_negative_case_is_refused_with_its_code(case: dict[str, Any]) -> None:
    ledger, tree = replay(case["prefix"])
    data = canonical(case["entry"])
    size = ledger.size
    with pytest.raises(ProtocolError) as info:
        if case.get("tree"):
            ledger.check(Act.from_bytes(data))  # the ledger alone accepts it
            check_tree_claim(Act.from_bytes(data), ledger.size, tree.root)
        else:
            ledger.apply(data)
    assert info.value.code == case["error"], info.value.detail
    assert ledger.size == size


def test_sealed_proposal_opens_with_its_key_and_matches_its_commitment() -> None:
    s = V["sealed"]
    plaintext = open_proposal(
        b64d(s["key"]), b64d(s["sealed"]), talks=b64d(s["talks"]), call=s["call"],
        commit=b64d(s["commit"]),
    )  # fmt: skip
    assert plaintext == b64d(s["plaintext"])
    with pytest.raises(ProtocolError) as info:
        open_proposal(b64d(s["key"]), b64d(s["sealed"]), talks=b64d(s["talks"]), call=2,
                      commit=b64d(s["commit"]))  # fmt: skip
    assert info.value.code == "decryption_failed"


def test_non_paper_opens_for_its_recipient_and_a_relabelled_header_fails() -> None:
    np = V["non_paper"]
    ledger, _ = replay(np["index"])
    header = DraftHeader.from_bytes(ENTRIES[np["index"]])
    assert header.mode == "non_paper" and header.commit == bytes(32)
    _, sender = ledger.roster.device(header.sender)
    opened = open_draft(
        header, keys_from_json(np["keys"]), b64d(np["ciphertext"]),
        me=DeviceKeys.from_private_bytes(b64d(np["recipient_private"])),
        talks=GENESIS_TALKS, sender=sender, recipients=header.recipients,
    )  # fmt: skip
    assert opened.payload.body == np["body"]
    relabelled = dict(V["log"][np["index"]])
    del relabelled["mode"]
    with pytest.raises(ProtocolError) as info:
        ledger.apply(canonical(relabelled))
    assert info.value.code == "bad_signature"


def test_case_names_are_unique_and_kebab_case() -> None:
    names = [c["name"] for c in V["negative"]]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in names)


def test_generator_reproduces_the_committed_file() -> None:
    assert gen_negotiation.render().encode("utf-8") == VECTORS_PATH.read_bytes()
