"""The byte-level fast paths agree with the parse-and-encode definitions they replace."""

from __future__ import annotations

import pytest

from protocol import crypto
from protocol.encoding import b64d, b64e, canonical, parse
from protocol.errors import BadSignatureError
from protocol.receipt import Promise, make_promise
from protocol.records import sign_record, signing_bytes, verify_record_bytes
from tests.helpers import make_rng


def test_make_promise_round_trips_through_from_json() -> None:
    key = crypto.SigningKey.generate(make_rng("promise"))
    promise = make_promise(key=key, origin="o.example/x", index=7, leaf=bytes(32), time=123)
    again = Promise.from_json(parse(promise.raw))
    assert again == promise
    assert again.raw == promise.raw
    promise.verify(key.public_bytes())


def test_verify_record_bytes_accepts_exactly_what_verify_record_accepts() -> None:
    key = crypto.SigningKey.generate(make_rng("records-fast"))
    signed = sign_record(key, crypto.CTX_RECEIPT, {"a": 1, "t": "x", "z": "sig"})
    raw = canonical(signed)
    sig = b64d(signed["sig"])
    verify_record_bytes(key.public_bytes(), crypto.CTX_RECEIPT, raw, sig)
    assert raw.replace(b',"sig":"' + b64e(sig).encode() + b'"', b"") == signing_bytes(signed)
    other = crypto.SigningKey.generate(make_rng("other")).public_bytes()
    with pytest.raises(BadSignatureError):
        verify_record_bytes(other, crypto.CTX_RECEIPT, raw, sig)
    with pytest.raises(BadSignatureError):
        verify_record_bytes(key.public_bytes(), crypto.CTX_DRAFT, raw, sig)


def test_verify_record_bytes_nested_sig_member_falls_back_to_parsing() -> None:
    # A nested object carrying the same "sig" member text must not be the one cut out.
    key = crypto.SigningKey.generate(make_rng("nested"))
    body = {"a": 1, "t": "x"}
    sig = key.sign(crypto.CTX_RECEIPT, canonical(body))
    forged = canonical({"a": {"b": 1, "sig": b64e(sig)}, "sig": b64e(sig), "t": "x"})
    with pytest.raises(BadSignatureError):
        verify_record_bytes(key.public_bytes(), crypto.CTX_RECEIPT, forged, sig)
