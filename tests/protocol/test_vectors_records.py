"""Check every case of the committed ``tests/vectors/records.json`` against the code.

The file is data made by ``tests/vectors/gen_records.py`` from a fixed seed; these checks
use only the protocol API (no test builder), so they hold any implementation to the same
bytes.  The last tests prove the generator still reproduces the file byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol import checkpoint as cp
from protocol import crypto
from protocol.encoding import JSONValue, b64d, b64e, canonical, parse
from protocol.envelope import (
    DraftHeader,
    Payload,
    keys_from_json,
    keys_hash,
    open_draft,
    open_with_key,
)
from protocol.errors import ProtocolError
from protocol.evidence import require_trusted, verify_evidence
from protocol.genesis import Genesis
from protocol.keys import DeviceKeys
from protocol.ledger import Ledger, entry_kind, parse_entry
from protocol.merkle import MemoryTree, leaf_hash
from protocol.receipt import Promise
from tests.vectors import gen_records

VECTORS_PATH = Path(__file__).parent.parent / "vectors" / "records.json"
V: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
NEGATIVE = {case["name"]: case for case in V["negative"]}
ENTRIES = [canonical(item["entry"]) for item in V["log"]]
GENESIS = Genesis.from_bytes(ENTRIES[0])
DEVICES = {d["name"]: DeviceKeys.from_private_bytes(b64d(d["private"])) for d in V["devices"]}


def raises_code(code: str, action: Callable[[], object]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        action()
    assert info.value.code == code, info.value.detail
    return info.value


def replay(upto: int) -> Ledger:
    ledger = Ledger.from_genesis_bytes(ENTRIES[0])
    for data in ENTRIES[1:upto]:
        ledger.apply(data)
    return ledger


def cases(check: str) -> list[Any]:
    return [pytest.param(c, id=c["name"]) for c in V["negative"] if c["check"] == check]


# --- the file itself ----------------------------------------------------------------------


def test_generator_reproduces_the_committed_file() -> None:
    assert gen_records.render().encode("utf-8") == VECTORS_PATH.read_bytes()


def test_case_names_are_unique_and_named_after_the_mutation() -> None:
    names = [c["name"] for c in V["negative"]]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z]+/[a-z0-9]+(-[a-z0-9]+)*", name), name
    checks = {c["check"] for c in V["negative"]}
    assert checks == {"ledger", "genesis", "open", "content", "promise", "checkpoint", "evidence"}


def test_named_cases_from_the_brief_are_present() -> None:
    for name in ("draft/wrong-recipient-set", "receipt/wrong-index", "roster/stale-prev"):
        assert name in NEGATIVE


# --- positive vectors ---------------------------------------------------------------------


@pytest.mark.parametrize("device", V["devices"], ids=lambda d: d["name"])
def test_device_keys(device: dict[str, Any]) -> None:
    keys = DEVICES[device["name"]]
    assert b64e(keys.device_id) == device["device_id"]
    assert b64e(keys.public.sign_pk) == device["sign"]
    assert b64e(keys.public.enc_pk) == device["enc"]
    assert keys.public.fingerprint == device["fingerprint"]


def test_log_key() -> None:
    key = crypto.SigningKey(b64d(V["log_key"]["seed"]))
    assert b64e(key.public_bytes()) == V["log_key"]["public"] == b64e(GENESIS.log_key)


def test_genesis_talks_id_and_fingerprint() -> None:
    assert ENTRIES[0] == canonical(V["genesis"]["entry"])
    assert b64e(GENESIS.talks_id) == V["genesis"]["talks_id"]
    assert b64e(leaf_hash(ENTRIES[0])) == V["genesis"]["talks_id"]
    assert GENESIS.fingerprint == V["genesis"]["fingerprint"]
    assert GENESIS.origin == V["genesis"]["origin"]


def test_log_replays_with_the_expected_leaves_and_root() -> None:
    ledger = replay(len(ENTRIES))
    assert ledger.size == len(ENTRIES)
    for item, data in zip(V["log"], ENTRIES, strict=True):
        assert b64e(leaf_hash(data)) == item["leaf"]
        assert entry_kind(parse_entry(data)) == item["type"]
    tree = MemoryTree.from_entries(ENTRIES)
    assert tree.size == V["tree"]["size"]
    assert b64e(tree.root()) == V["tree"]["root"]


@pytest.mark.parametrize("draft", V["drafts"], ids=lambda d: str(d["index"]))
def test_draft_opens_for_every_recipient(draft: dict[str, Any]) -> None:
    index = draft["index"]
    header = DraftHeader.from_bytes(ENTRIES[index])
    keys = keys_from_json(draft["keys"])
    ciphertext = b64d(draft["ciphertext"])
    roster = replay(index).roster
    _, sender = roster.device(header.sender)
    assert b64e(header.sender) == b64e(DEVICES[draft["sender"]].device_id)
    assert keys_hash(keys) == header.wrapped
    payload = Payload.from_bytes(canonical(draft["payload"]))
    opened_by = 0
    for keys_ in DEVICES.values():
        if keys_.device_id not in header.recipients:
            continue
        opened = open_draft(
            header,
            keys,
            ciphertext,
            me=keys_,
            talks=GENESIS.talks_id,
            sender=sender,
            recipients=roster.channel_devices(header.channel),
        )
        assert opened.payload == payload
        assert b64e(opened.content_key) == draft["content_key"]
        opened_by += 1
    assert opened_by == len(header.recipients)
    assert (
        b64e(crypto.commitment(b64d(draft["content_key"]), payload.to_bytes())) == (draft["commit"])
    )
    assert open_with_key(header, ciphertext, b64d(draft["content_key"])) == payload


def test_promises() -> None:
    assert len(V["promises"]) == len(ENTRIES)
    for i, record in enumerate(V["promises"]):
        promise = Promise.from_json(record)
        promise.verify(GENESIS.log_key)
        assert promise.index == i
        assert promise.leaf == leaf_hash(ENTRIES[i])
        assert promise.origin == GENESIS.origin


def test_checkpoint_note() -> None:
    c = V["checkpoint"]
    checkpoint, note = cp.open_checkpoint(
        c["note"].encode(),
        origin=GENESIS.origin,
        log_name=GENESIS.log_name,
        log_key=GENESIS.log_key,
    )
    assert checkpoint.size == c["size"] == len(ENTRIES)
    assert b64e(checkpoint.root) == c["root"] == V["tree"]["root"]
    assert len(note.signatures) == c["signatures"]
    assert note.to_bytes() == c["note"].encode()
    roster = replay(len(ENTRIES)).roster
    assert sorted(roster.witnesses()) == c["witnesses"]
    assert list(require_trusted(checkpoint, note, roster)) == c["witnesses"]


def test_evidence_bundle_and_report() -> None:
    e = V["evidence"]
    report = verify_evidence(canonical(e["bundle"]), GENESIS.talks_id)
    r = e["report"]
    assert report.index == r["index"]
    assert report.channel == r["channel"]
    assert report.sender_member == r["sender_member"]
    assert b64e(report.sender_device) == r["sender_device"]
    assert list(report.recipients) == r["recipients"]
    assert list(report.cosigners) == r["cosigners"]
    assert report.checkpoint_size == r["checkpoint_size"]
    assert [[f.index, f.member, f.kind, f.reason] for f in report.receipts] == r["receipts"]
    assert parse(report.payload.to_bytes()) == r["payload"]


# --- negative vectors ---------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("ledger"))
def test_ledger_refuses(case: dict[str, Any]) -> None:
    ledger = replay(case["prefix"])
    size = ledger.size
    raises_code(case["error"], lambda: ledger.apply(canonical(case["entry"])))
    assert ledger.size == size
    # The prefix itself is valid: the refusal is about the entry alone.
    assert size == case["prefix"]


@pytest.mark.parametrize("case", cases("genesis"))
def test_genesis_refused(case: dict[str, Any]) -> None:
    raises_code(case["error"], lambda: Genesis.from_json(case["entry"]))


@pytest.mark.parametrize("case", cases("open"))
def test_open_refused(case: dict[str, Any]) -> None:
    roster = replay(case["prefix"]).roster
    header = DraftHeader.from_json(case["header"])
    _, sender = roster.device(header.sender)
    pinned = b64d(case["pinned"]) if "pinned" in case else GENESIS.talks_id
    raises_code(
        case["error"],
        lambda: open_draft(
            header,
            keys_from_json(case["keys"]),
            b64d(case["ciphertext"]),
            me=DEVICES[case["device"]],
            talks=pinned,
            sender=sender,
            recipients=roster.channel_devices(header.channel),
        ),
    )


@pytest.mark.parametrize("case", cases("content"))
def test_content_refused(case: dict[str, Any]) -> None:
    draft = next(d for d in V["drafts"] if d["index"] == case["draft"])
    header = DraftHeader.from_bytes(ENTRIES[case["draft"]])
    raises_code(
        case["error"],
        lambda: open_with_key(header, b64d(draft["ciphertext"]), b64d(case["content_key"])),
    )


@pytest.mark.parametrize("case", cases("promise"))
def test_promise_refused(case: dict[str, Any]) -> None:
    raises_code(case["error"], lambda: Promise.from_json(case["record"]).verify(GENESIS.log_key))


@pytest.mark.parametrize("case", cases("checkpoint"))
def test_checkpoint_refused(case: dict[str, Any]) -> None:
    roster = replay(len(ENTRIES)).roster

    def check() -> None:
        checkpoint, note = cp.open_checkpoint(
            case["note"].encode(),
            origin=GENESIS.origin,
            log_name=GENESIS.log_name,
            log_key=GENESIS.log_key,
        )
        require_trusted(checkpoint, note, roster)

    raises_code(case["error"], check)


def _patched(bundle: JSONValue, patch: list[list[Any]]) -> JSONValue:
    value = json.loads(json.dumps(bundle))
    for op, *args in patch:
        if op == "set":
            path, new = args
            parent = value
            for step in path[:-1]:
                parent = parent[step]
            if isinstance(parent, list) and path[-1] == len(parent):
                parent.append(new)
            else:
                parent[path[-1]] = new
        elif op == "delete":
            (path,) = args
            parent = value
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
        else:
            a, b = args
            pa, pb = value, value
            for step in a[:-1]:
                pa = pa[step]
            for step in b[:-1]:
                pb = pb[step]
            pa[a[-1]], pb[b[-1]] = pb[b[-1]], pa[a[-1]]
    return value


@pytest.mark.parametrize("case", cases("evidence"))
def test_evidence_refused(case: dict[str, Any]) -> None:
    data = canonical(_patched(V["evidence"]["bundle"], case["patch"]))
    pinned = b64d(case["pinned"]) if "pinned" in case else GENESIS.talks_id
    exc = raises_code(case["error"], lambda: verify_evidence(data, pinned))
    assert exc.detail.startswith(f"step {case['step']}"), exc.detail
