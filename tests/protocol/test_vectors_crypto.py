"""Check every case in the committed ``tests/vectors/crypto.json`` against the code.

The file is data, made by ``tests/vectors/gen_crypto.py`` from fixed seeds; the last test
proves the generator still reproduces it byte for byte.  Positive cases are also checked
against independent implementations (``rfc8785``, OpenSSL's Ed25519, PyNaCl's sealed box).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nacl.public
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import crypto
from protocol.encoding import DEFAULT_MAX_SIZE, b64d, b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.keys import DeviceKeys, DevicePublic
from tests.vectors import gen_crypto

VECTORS_PATH = Path(__file__).parent.parent / "vectors" / "crypto.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

Case = dict[str, Any]


def cases(section: str) -> list[Any]:
    return [pytest.param(case, id=case["name"]) for case in VECTORS[section]]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def raises_code(code: str, action: Callable[[], object]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        action()
    assert info.value.code == code
    return info.value


def fixed(data: bytes) -> crypto.Rng:
    """An rng that replays ``data`` (for recomputing outputs that drew randomness)."""

    def rng(n: int) -> bytes:
        assert n == len(data)
        return data

    return rng


# --- the file itself ------------------------------------------------------------------------


def test_generator_reproduces_the_committed_file() -> None:
    assert gen_crypto.render().encode("utf-8") == VECTORS_PATH.read_bytes()


def test_case_names_are_unique_and_kebab_case() -> None:
    for section, value in VECTORS.items():
        if not isinstance(value, list):
            continue
        names = [case["name"] for case in value]
        assert len(names) == len(set(names)), section
        for name in names:
            assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name


def test_contexts() -> None:
    assert len(VECTORS["contexts"]) == len(crypto.ALL_CONTEXTS)
    for name, ctx in VECTORS["contexts"].items():
        assert getattr(crypto, f"CTX_{name.upper()}") == h(ctx)


# --- encoding -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("canonical"))
def test_canonical(case: Case) -> None:
    expected = case["canonical"].encode("utf-8")
    assert canonical(case["value"]) == expected
    assert rfc8785.dumps(case["value"]) == expected
    assert parse(expected) == case["value"]


@pytest.mark.parametrize("case", cases("canonical_rejected"))
def test_canonical_rejected(case: Case) -> None:
    max_size = case.get("max_size", DEFAULT_MAX_SIZE)
    raises_code(case["error"], lambda: parse(h(case["input"]), max_size=max_size))


@pytest.mark.parametrize("case", cases("base64url"))
def test_base64url(case: Case) -> None:
    assert b64e(h(case["bytes"])) == case["text"]
    assert b64d(case["text"]) == h(case["bytes"])


@pytest.mark.parametrize("case", cases("base64url_rejected"))
def test_base64url_rejected(case: Case) -> None:
    raises_code(case["error"], lambda: b64d(case["text"], length=case.get("length")))


# --- signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["signatures"]["cases"], ids=lambda c: c["name"])
def test_signature(case: Case) -> None:
    signer = VECTORS["signatures"]
    key = crypto.SigningKey(h(signer["seed"]))
    public = key.public_bytes()
    assert public == h(signer["public"])
    message, signature = h(case["message"]), h(case["signature"])
    if case["name"] == "note":
        assert key.sign_note(message) == signature
        crypto.verify_note(public, message, signature)
        signed = message
    else:
        context = h(case["context"])
        assert key.sign(context, message) == signature  # Ed25519 is deterministic
        crypto.verify(public, context, message, signature)
        signed = context + message
    Ed25519PublicKey.from_public_bytes(public).verify(signature, signed)


@pytest.mark.parametrize("case", cases("signatures_rejected"))
def test_signature_rejected(case: Case) -> None:
    raises_code(
        case["error"],
        lambda: crypto.verify(
            h(case["public"]), h(case["context"]), h(case["message"]), h(case["signature"])
        ),
    )


@pytest.mark.parametrize("case", cases("weak_keys"))
def test_weak_key(case: Case) -> None:
    public = h(case["public"])
    if case["kind"] == "ed25519":
        raises_code(case["error"], lambda: crypto.check_signing_key(public))
    else:
        raises_code(case["error"], lambda: crypto.check_box_key(public))
        raises_code(case["error"], lambda: crypto.wrap_key(bytes(32), public, fixed(bytes(32))))


# --- devices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("devices"))
def test_device(case: Case) -> None:
    keys = DeviceKeys.from_private_bytes(h(case["sign_seed"]) + h(case["enc_secret"]))
    assert keys.public.sign_pk == h(case["sign_pk"])
    assert keys.public.enc_pk == h(case["enc_pk"])
    assert keys.device_id == h(case["device_id"])
    assert keys.public.fingerprint == case["fingerprint"]
    assert canonical(keys.public.to_json()).decode() == case["json"]
    assert DevicePublic.from_json(parse(case["json"].encode())) == keys.public


@pytest.mark.parametrize("case", cases("devices_rejected"))
def test_device_rejected(case: Case) -> None:
    raises_code(case["error"], lambda: DevicePublic.from_json(case["json"]))


# --- payload, key wrapping, commitment ------------------------------------------------------


def test_payload() -> None:
    v = VECTORS["payload"]
    key, plaintext, associated = h(v["content_key"]), h(v["plaintext"]), h(v["associated"])
    sealed = h(v["sealed"])
    assert crypto.open_payload(key, sealed, associated) == plaintext
    nonce = sealed[: crypto.AEAD_NONCE_LEN]
    assert crypto.seal_payload(key, plaintext, associated, fixed(nonce)) == sealed
    assert crypto.commitment(key, plaintext) == h(v["commitment"])


def test_wrapped_key() -> None:
    v = VECTORS["payload"]
    box = crypto.BoxKey(h(v["recipient_secret"]))
    assert box.public_bytes() == h(v["recipient_public"])
    wrapped, key = h(v["wrapped"]), h(v["content_key"])
    assert box.unwrap(wrapped) == key
    again = crypto.wrap_key(key, box.public_bytes(), fixed(h(v["ephemeral_seed"])))
    assert again == wrapped
    opener = nacl.public.SealedBox(nacl.public.PrivateKey(h(v["recipient_secret"])))
    assert opener.decrypt(wrapped) == key


@pytest.mark.parametrize("case", cases("payload_rejected"))
def test_payload_rejected(case: Case) -> None:
    error = raises_code(
        case["error"],
        lambda: crypto.open_payload(
            h(case["content_key"]), h(case["sealed"]), h(case["associated"])
        ),
    )
    assert str(error) == "cannot decrypt"


@pytest.mark.parametrize("case", cases("wrap_rejected"))
def test_wrap_rejected(case: Case) -> None:
    box = crypto.BoxKey(h(case["recipient_secret"]))
    error = raises_code(case["error"], lambda: box.unwrap(h(case["wrapped"])))
    assert str(error) == "cannot decrypt"


# --- key store ----------------------------------------------------------------------------------


def _keystore_key(v: Case) -> bytes:
    return crypto.passphrase_key(
        h(v["passphrase"]), h(v["salt"]), opslimit=v["opslimit"], memlimit=v["memlimit"]
    )


def test_keystore() -> None:
    v = VECTORS["keystore"]
    key = _keystore_key(v)
    assert key == h(v["key"])
    sealed = h(v["sealed"])
    assert crypto.secretbox_open(key, sealed) == h(v["plaintext"])
    nonce = sealed[:24]
    assert crypto.secretbox_seal(key, h(v["plaintext"]), fixed(nonce)) == sealed
    DeviceKeys.from_private_bytes(h(v["plaintext"]))


@pytest.mark.parametrize("case", cases("keystore_rejected"))
def test_keystore_rejected(case: Case) -> None:
    v = {**VECTORS["keystore"], **case}
    raises_code(case["error"], lambda: crypto.secretbox_open(_keystore_key(v), h(v["sealed"])))
