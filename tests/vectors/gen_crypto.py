"""Generate ``tests/vectors/crypto.json``: known-answer vectors for encoding, crypto, keys.

Run from the repository root::

    python -m tests.vectors.gen_crypto          # rewrite the file
    python -m tests.vectors.gen_crypto --check  # exit 1 if the file is stale

Every random byte comes from :func:`tests.helpers.make_rng` with a fixed seed, so the
output is reproducible byte for byte (``test_vectors_crypto`` checks that).  Bytes are
hex; contexts are also given by name.  Negative cases are named after the mutation that
produced them (``wrong-context``, ``flipped-signature-bit``) and give the stable error
``code`` a conforming implementation raises.

Changing an existing vector means the wire format changed: that needs a protocol version
bump, not a regenerated file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from protocol import crypto
from protocol.encoding import MAX_SAFE_INT, b64e, canonical
from protocol.keys import DeviceKeys
from tests.helpers import (
    ED25519_L,
    ED25519_SMALL_ORDER,
    ED25519_TORSION,
    P25519,
    X25519_SMALL_ORDER_U,
    ed_add,
    ed_decode,
    ed_encode,
    flip_bit,
    make_rng,
    u_bytes,
)
from tests.vectors.writer import write_or_check

OUTPUT = Path(__file__).with_name("crypto.json")

Case = dict[str, Any]

CONTEXT_NAMES = {
    ctx: ctx.removeprefix(b"docket/v1/").rstrip(b"\x00").decode() for ctx in crypto.ALL_CONTEXTS
}


def _hex(data: bytes) -> str:
    return data.hex()


# --- canonical JSON ---------------------------------------------------------------------


def _canonical_cases() -> list[Case]:
    rng = make_rng("vectors/canonical")
    values: list[tuple[str, Any]] = [
        ("null", None),
        ("true", True),
        ("false", False),
        ("zero", 0),
        ("negative", -1),
        ("max-safe-integer", MAX_SAFE_INT),
        ("min-safe-integer", -MAX_SAFE_INT),
        ("empty-string", ""),
        ("non-ascii-raw-utf8", "d\u00e9l\u00e9gation \u0627\u0644\u0648\u0641\u062f \U0001f54a"),
        ("quote-and-backslash", 'a"b\\c/d'),
        ("short-escapes", "\b\f\n\r\t"),
        ("other-controls-as-lowercase-hex", "\x00\x01\x1b\x1f"),
        ("del-and-line-separators-raw", "\x7f\u2028\u2029"),
        ("empty-array", []),
        ("empty-object", {}),
        ("keys-sorted-by-code-point", {"b": 1, "a": 2, "B": 3, "_": 4, "1": 5, "": 6, "aa": 7}),
        ("key-with-escapes", {'q"\\\n': 0}),
        ("nested", {"z": [1, [2, [3, {}]]], "a": {"y": None, "x": [True, False]}}),
        (
            "random-document",
            {
                "id": b64e(rng(16)),
                "n": int.from_bytes(rng(6), "big"),
                "recipients": sorted(b64e(rng(16)) for _ in range(3)),
                "body": {"text": rng(12).hex(), "len": 12},
            },
        ),
    ]
    return [
        {"name": name, "value": value, "canonical": canonical(value).decode("utf-8")}
        for name, value in values
    ]


def _canonical_rejected() -> list[Case]:
    deep = 17
    cases: list[tuple[str, bytes, str, dict[str, int]]] = [
        ("whitespace", b'{"a": 1}', "non_canonical", {}),
        ("trailing-newline", b"[1]\n", "non_canonical", {}),
        ("unsorted-keys", b'{"b":1,"a":2}', "non_canonical", {}),
        ("duplicate-keys", b'{"a":1,"a":1}', "malformed", {}),
        ("escaped-ascii", b'"\\u0041"', "non_canonical", {}),
        ("escaped-solidus", b'"\\/"', "non_canonical", {}),
        ("escaped-non-ascii", b'"\\u00e9"', "non_canonical", {}),
        ("uppercase-hex-escape", b'"\\u001F"', "non_canonical", {}),
        ("lone-surrogate-escape", b'"\\ud800"', "malformed", {}),
        ("invalid-utf8", b'"\xff"', "malformed", {}),
        ("utf8-encoded-surrogate", b'"\xed\xa0\x80"', "malformed", {}),
        ("utf8-bom", b"\xef\xbb\xbf{}", "malformed", {}),
        ("float", b"1.0", "malformed", {}),
        ("exponent", b"1e3", "malformed", {}),
        ("negative-zero", b"-0", "non_canonical", {}),
        ("leading-zero", b"01", "malformed", {}),
        ("nan", b"NaN", "malformed", {}),
        ("infinity", b"Infinity", "malformed", {}),
        ("integer-above-2-53", b"9007199254740992", "bad_value", {}),
        ("integer-below-minus-2-53", b"-9007199254740992", "bad_value", {}),
        ("non-ascii-key", '{"\u00e9":1}'.encode(), "malformed", {}),
        ("too-deep", b"[" * deep + b"1" + b"]" * deep, "too_deep", {}),
        ("too-large", b'"0123456789"', "too_large", {"max_size": 11}),
        ("trailing-comma", b"[1,]", "malformed", {}),
    ]
    return [
        {"name": name, "input": _hex(data), "error": error, **limits}
        for name, data, error, limits in cases
    ]


def _base64url() -> tuple[list[Case], list[Case]]:
    rng = make_rng("vectors/base64url")
    good = [
        {"name": f"{n}-bytes", "bytes": _hex(data), "text": b64e(data)}
        for n in (0, 1, 2, 3, 32)
        for data in [rng(n)]
    ]
    good.append({"name": "url-safe-alphabet", "bytes": "fbff", "text": "-_8"})
    bad: list[Case] = [
        {"name": "padding", "text": "AA==", "error": "malformed"},
        {"name": "standard-alphabet", "text": "+/8", "error": "malformed"},
        {"name": "whitespace", "text": "AA A", "error": "malformed"},
        {"name": "length-1-mod-4", "text": "AAAAA", "error": "malformed"},
        {"name": "non-zero-trailing-bits", "text": "AB", "error": "non_canonical"},
        {"name": "wrong-length", "text": b64e(bytes(31)), "length": 32, "error": "bad_value"},
    ]
    return good, bad


# --- signatures ---------------------------------------------------------------------------


def _signatures() -> tuple[Case, list[Case]]:
    rng = make_rng("vectors/ed25519")
    seed = rng(32)
    key = crypto.SigningKey(seed)
    public = key.public_bytes()
    good: list[Case] = []
    for ctx in crypto.ALL_CONTEXTS:
        message = canonical({"kind": CONTEXT_NAMES[ctx], "nonce": b64e(rng(8))})
        good.append(
            {
                "name": CONTEXT_NAMES[ctx],
                "context": _hex(ctx),
                "message": _hex(message),
                "signature": _hex(key.sign(ctx, message)),
            }
        )
    note = b"docket.example/talks/1\n7\n" + b64e(rng(32)).encode() + b"\n"
    good.append(
        {
            "name": "note",
            "context": "",
            "message": _hex(note),
            "signature": _hex(key.sign_note(note)),
        }
    )

    ctx, message = crypto.CTX_DRAFT, canonical({"kind": "draft", "text": "Article 1"})
    sig = key.sign(ctx, message)
    other = crypto.SigningKey(rng(32))
    s_plus_l = sig[:32] + (int.from_bytes(sig[32:], "little") + ED25519_L).to_bytes(32, "little")

    def case(name: str, **over: bytes) -> Case:
        fields = {"public": public, "context": ctx, "message": message, "signature": sig}
        fields.update(over)
        return {"name": name, **{k: _hex(v) for k, v in fields.items()}, "error": "bad_signature"}

    bad = [
        case("wrong-context", context=crypto.CTX_RECEIPT),
        case("flipped-signature-bit", signature=flip_bit(sig, 100)),
        case("flipped-r-bit", signature=flip_bit(sig, 0)),
        case("flipped-message-bit", message=flip_bit(message, 9)),
        case("appended-message-byte", message=message + b" "),
        case("flipped-key-bit", public=flip_bit(public, 3)),
        case("other-signers-key", public=other.public_bytes()),
        case("truncated-signature", signature=sig[:63]),
        case("extended-signature", signature=sig + b"\x00"),
        case("s-plus-l", signature=s_plus_l),
        case("zero-signature", signature=bytes(64)),
        case(
            "small-order-key-forgery",
            public=ED25519_SMALL_ORDER[2],
            signature=ED25519_SMALL_ORDER[2] + bytes(32),
        ),
    ]
    signer = {"seed": _hex(seed), "public": _hex(public), "cases": good}
    return signer, bad


# --- weak keys ------------------------------------------------------------------------------


def _weak_keys() -> list[Case]:
    cases: list[Case] = []
    for i, encoded in enumerate(ED25519_SMALL_ORDER):
        cases.append({"name": f"ed25519-small-order-{i}", "kind": "ed25519", "public": encoded})
    cases.append(
        {
            "name": "ed25519-small-order-sign-bit",
            "kind": "ed25519",
            "public": flip_bit(bytes(32), 255),
        }
    )
    for y in (P25519, P25519 + 1, P25519 + 5, 2**255 - 1):
        cases.append(
            {
                "name": f"ed25519-non-canonical-y-p-plus-{y - P25519}",
                "kind": "ed25519",
                "public": y.to_bytes(32, "little"),
            }
        )
    real = ed_decode(crypto.SigningKey(make_rng("vectors/weak")(32)).public_bytes())
    assert real is not None
    cases.append(
        {
            "name": "ed25519-mixed-order",
            "kind": "ed25519",
            "public": ed_encode(ed_add(real, ED25519_TORSION[1])),
        }
    )
    cases.append({"name": "ed25519-wrong-length", "kind": "ed25519", "public": bytes(31)})
    for u in X25519_SMALL_ORDER_U:
        label = {P25519 - 1: "p-minus-1", P25519: "p", P25519 + 1: "p-plus-1"}.get(u, str(u)[:8])
        cases.append(
            {"name": f"x25519-small-order-{label}", "kind": "x25519", "public": u_bytes(u)}
        )
    for name, u in [
        ("x25519-non-canonical-p-plus-2", P25519 + 2),
        ("x25519-high-bit-set", 9 | (1 << 255)),
        ("x25519-all-ones", 2**256 - 1),
    ]:
        cases.append({"name": name, "kind": "x25519", "public": u_bytes(u)})
    cases.append({"name": "x25519-wrong-length", "kind": "x25519", "public": bytes(33)})
    return [{**c, "public": _hex(c["public"]), "error": "weak_key"} for c in cases]


# --- devices --------------------------------------------------------------------------------


def _devices() -> tuple[list[Case], list[Case]]:
    rng = make_rng("vectors/devices")
    good: list[Case] = []
    fixed = [("all-zero-secrets", bytes(64)), ("counting-secrets", bytes(range(64)))]
    fixed += [(f"random-{i}", rng(64)) for i in range(3)]
    for name, private in fixed:
        keys = DeviceKeys.from_private_bytes(private)
        good.append(
            {
                "name": name,
                "sign_seed": _hex(private[:32]),
                "enc_secret": _hex(private[32:]),
                "sign_pk": _hex(keys.public.sign_pk),
                "enc_pk": _hex(keys.public.enc_pk),
                "device_id": _hex(keys.device_id),
                "fingerprint": keys.public.fingerprint,
                "json": canonical(keys.public.to_json()).decode(),
            }
        )
    pub = DeviceKeys.from_private_bytes(rng(64)).public
    sign, enc = b64e(pub.sign_pk), b64e(pub.enc_pk)
    bad: list[Case] = [
        {
            "name": "unknown-field",
            "json": {"enc": enc, "sign": sign, "x": 1},
            "error": "unknown_field",
        },
        {"name": "missing-enc", "json": {"sign": sign}, "error": "missing_field"},
        {
            "name": "short-sign-key",
            "json": {"enc": enc, "sign": b64e(pub.sign_pk[:31])},
            "error": "bad_value",
        },
        {"name": "padded-base64", "json": {"enc": enc, "sign": sign + "="}, "error": "malformed"},
        {"name": "wrong-type", "json": {"enc": enc, "sign": 1}, "error": "wrong_type"},
        {
            "name": "small-order-sign-key",
            "json": {"enc": enc, "sign": b64e(ED25519_SMALL_ORDER[0])},
            "error": "weak_key",
        },
        {
            "name": "small-order-enc-key",
            "json": {"enc": b64e(u_bytes(1)), "sign": sign},
            "error": "weak_key",
        },
        {"name": "not-an-object", "json": [sign, enc], "error": "wrong_type"},
    ]
    return good, bad


# --- payload, wrapping, commitment ------------------------------------------------------------


def _payload() -> tuple[Case, list[Case], list[Case]]:
    rng = make_rng("vectors/payload")
    content_key = crypto.new_content_key(rng)
    plaintext = b"Article 3. The parties agree to a corridor at km 14.\n"
    associated = crypto.sha256(b"draft header")
    sealed = crypto.seal_payload(content_key, plaintext, associated, rng)
    recipient = crypto.BoxKey.generate(rng)
    ephemeral_seed = rng(32)
    wrapped = crypto.wrap_key(content_key, recipient.public_bytes(), lambda n: ephemeral_seed[:n])
    good: Case = {
        "content_key": _hex(content_key),
        "plaintext": _hex(plaintext),
        "associated": _hex(associated),
        "sealed": _hex(sealed),
        "commitment": _hex(crypto.commitment(content_key, plaintext)),
        "recipient_secret": _hex(recipient.secret_bytes()),
        "recipient_public": _hex(recipient.public_bytes()),
        "ephemeral_seed": _hex(ephemeral_seed),
        "wrapped": _hex(wrapped),
    }

    def pcase(name: str, **over: bytes) -> Case:
        fields = {"content_key": content_key, "sealed": sealed, "associated": associated}
        fields.update(over)
        return {
            "name": name,
            **{k: _hex(v) for k, v in fields.items()},
            "error": "decryption_failed",
        }

    n = crypto.AEAD_NONCE_LEN
    payload_bad = [
        pcase("wrong-key", content_key=crypto.new_content_key(rng)),
        pcase("short-key", content_key=content_key[:31]),
        pcase("wrong-associated-data", associated=flip_bit(associated, 0)),
        pcase("empty-associated-data", associated=b""),
        pcase("flipped-nonce-bit", sealed=flip_bit(sealed, 0)),
        pcase("flipped-ciphertext-bit", sealed=flip_bit(sealed, 8 * n + 3)),
        pcase("flipped-tag-bit", sealed=flip_bit(sealed, 8 * len(sealed) - 1)),
        pcase("truncated", sealed=sealed[:-1]),
        pcase("shorter-than-overhead", sealed=sealed[: crypto.AEAD_OVERHEAD - 1]),
        pcase("appended-byte", sealed=sealed + b"\x00"),
    ]

    other = crypto.BoxKey.generate(rng)

    def wcase(name: str, **over: bytes) -> Case:
        fields = {"recipient_secret": recipient.secret_bytes(), "wrapped": wrapped}
        fields.update(over)
        return {
            "name": name,
            **{k: _hex(v) for k, v in fields.items()},
            "error": "decryption_failed",
        }

    short_key_box = _wrap_raw(content_key[:31], recipient.public_bytes(), rng(32))
    wrap_bad = [
        wcase("wrong-recipient", recipient_secret=other.secret_bytes()),
        wcase("flipped-ephemeral-key-bit", wrapped=flip_bit(wrapped, 5)),
        wcase("flipped-box-bit", wrapped=flip_bit(wrapped, 8 * 40)),
        wcase("flipped-tag-bit", wrapped=flip_bit(wrapped, 8 * 33)),
        wcase("truncated", wrapped=wrapped[:-1]),
        wcase("appended-byte", wrapped=wrapped + b"\x00"),
        wcase("empty", wrapped=b""),
        wcase("wrong-length-content-key", wrapped=short_key_box),
    ]
    return good, payload_bad, wrap_bad


def _wrap_raw(content: bytes, recipient: bytes, seed: bytes) -> bytes:
    """A libsodium sealed box around ``content`` of any length (``wrap_key`` insists on 32)."""
    epk, esk = sodium.crypto_box_seed_keypair(seed)
    nonce = sodium.crypto_generichash_blake2b_salt_personal(epk + recipient, digest_size=24)
    return bytes(epk) + bytes(sodium.crypto_box_easy(content, nonce, recipient, esk))


# --- key store ----------------------------------------------------------------------------------


def _keystore() -> tuple[Case, list[Case]]:
    rng = make_rng("vectors/keystore")
    opslimit = sodium.crypto_pwhash_argon2id_OPSLIMIT_MIN
    memlimit = sodium.crypto_pwhash_argon2id_MEMLIMIT_MIN
    passphrase = b"correct horse battery staple"
    salt = rng(crypto.PWHASH_SALT_LEN)
    key = crypto.passphrase_key(passphrase, salt, opslimit=opslimit, memlimit=memlimit)
    plaintext = DeviceKeys.generate(rng).private_bytes()
    sealed = crypto.secretbox_seal(key, plaintext, rng)
    good: Case = {
        "passphrase": _hex(passphrase),
        "salt": _hex(salt),
        "opslimit": opslimit,
        "memlimit": memlimit,
        "key": _hex(key),
        "plaintext": _hex(plaintext),
        "sealed": _hex(sealed),
    }
    bad = [
        {"name": "wrong-passphrase", "passphrase": _hex(b"correct horse battery stapler")},
        {"name": "wrong-salt", "salt": _hex(flip_bit(salt, 0))},
        {"name": "flipped-box-bit", "sealed": _hex(flip_bit(sealed, 8 * 30))},
        {"name": "truncated", "sealed": _hex(sealed[:-1])},
    ]
    return good, [{**c, "error": "decryption_failed"} for c in bad]


# --- assembly -------------------------------------------------------------------------------------


def build() -> dict[str, Any]:
    """All vectors as one JSON-ready object."""
    b64_good, b64_bad = _base64url()
    signer, sig_bad = _signatures()
    devices, devices_bad = _devices()
    payload, payload_bad, wrap_bad = _payload()
    keystore, keystore_bad = _keystore()
    return {
        "about": (
            "Docket known-answer vectors for protocol/encoding.py, crypto.py and keys.py. "
            "Generated by tests/vectors/gen_crypto.py; do not edit. Bytes are hex. "
            "Negative cases are named after their mutation and give the error code."
        ),
        "contexts": {name: _hex(ctx) for ctx, name in CONTEXT_NAMES.items()},
        "canonical": _canonical_cases(),
        "canonical_rejected": _canonical_rejected(),
        "base64url": b64_good,
        "base64url_rejected": b64_bad,
        "signatures": signer,
        "signatures_rejected": sig_bad,
        "weak_keys": _weak_keys(),
        "devices": devices,
        "devices_rejected": devices_bad,
        "payload": payload,
        "payload_rejected": payload_bad,
        "wrap_rejected": wrap_bad,
        "keystore": keystore,
        "keystore_rejected": keystore_bad,
    }


def render() -> str:
    """The exact text of ``crypto.json``."""
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(OUTPUT, render(), "tests.vectors.gen_crypto", argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
