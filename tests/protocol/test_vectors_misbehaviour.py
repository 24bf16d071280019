"""Check every case of the committed ``tests/vectors/misbehaviour.json`` against the code.

The file is data made by ``tests/vectors/gen_misbehaviour.py`` from a fixed seed; the
checks use the protocol API (and PyNaCl's own sealed box as an oracle for the shared
key), and the last test proves the generator still reproduces the file byte for byte.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.public
import pytest

from protocol import crypto
from protocol.encoding import b64d, canonical
from protocol.errors import EvidenceError
from protocol.misbehaviour import SENDER_FAULT_REASONS, MisbehaviourBundle, verify_misbehaviour
from tests.protocol.builders import set_path
from tests.vectors import gen_misbehaviour

VECTORS_PATH = Path(__file__).parent.parent / "vectors" / "misbehaviour.json"
V: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
TALKS = b64d(V["talks_id"])


def test_generator_reproduces_the_committed_file() -> None:
    assert gen_misbehaviour.render().encode("utf-8") == VECTORS_PATH.read_bytes()


def test_case_names_are_unique_and_kebab_case() -> None:
    names = [c["name"] for c in V["negative"]] + [c["name"] for c in V["proven"]]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"(misbehaviour/)?[a-z0-9]+(-[a-z0-9]+)*", name), name


def test_shared_key() -> None:
    v = {k: b64d(x) for k, x in V["shared_key"].items()}
    box = crypto.BoxKey(v["recipient_secret"])
    assert box.public_bytes() == v["recipient_public"]
    wrapped = v["wrapped"]
    assert (
        nacl.public.SealedBox(nacl.public.PrivateKey(v["recipient_secret"])).decrypt(wrapped)
        == (v["content_key"])
    )
    assert box.unwrap(wrapped) == v["content_key"]
    assert crypto.sealed_box_shared_key(wrapped, box) == v["shared_key"]
    nonce = sodium.crypto_generichash_blake2b_salt_personal(
        wrapped[:32] + v["recipient_public"], digest_size=24
    )
    assert nonce == v["nonce"]
    opened = crypto.open_sealed_box_with_shared_key(wrapped, v["shared_key"], box.public_bytes())
    assert opened == v["content_key"]


@pytest.mark.parametrize("case", V["proven"], ids=lambda c: c["name"])
def test_proven(case: dict[str, Any]) -> None:
    data = canonical(case["bundle"])
    bundle = MisbehaviourBundle.from_bytes(data)
    assert bundle.to_bytes() == data
    r = verify_misbehaviour(data, TALKS)
    expected = case["report"]
    assert r.failure in SENDER_FAULT_REASONS
    assert gen_misbehaviour.report_json(r) == expected


@pytest.mark.parametrize("case", V["negative"], ids=lambda c: c["name"])
def test_negative(case: dict[str, Any]) -> None:
    value = V["proven"][0]["bundle"]
    for path, new in case["patch"]:
        value = set_path(value, tuple(path), new)
    pinned = b64d(case["pinned"]) if "pinned" in case else TALKS
    with pytest.raises(EvidenceError) as info:
        verify_misbehaviour(canonical(value), pinned)
    assert info.value.code == case["code"]
    assert info.value.detail.startswith(f"step {case['step']} "), info.value.detail
    if "cause" in case:
        assert info.value.detail.split(": ")[1] == case["cause"], info.value.detail
