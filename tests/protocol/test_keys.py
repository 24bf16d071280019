"""Device identities (protocol/keys.py): ids, fingerprints, JSON form, private bytes."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.crypto import BoxKey, Rng, SigningKey
from protocol.encoding import JSONValue, b64d, b64e, canonical, parse
from protocol.errors import (
    BadValueError,
    MalformedError,
    MissingFieldError,
    NonCanonicalError,
    ProtocolError,
    UnknownFieldError,
    WeakKeyError,
    WrongTypeError,
)
from protocol.keys import DEVICE_ID_LEN, DeviceKeys, DevicePublic, readable_digits
from tests.helpers import ED25519_SMALL_ORDER, X25519_SMALL_ORDER_U, flip_bit, make_rng, u_bytes

seeds = st.binary(min_size=32, max_size=32)
FINGERPRINT_RE = re.compile(r"[0-9]{5}( [0-9]{5}){5}")


def device(sign_seed: bytes, enc_secret: bytes) -> DeviceKeys:
    return DeviceKeys(SigningKey(sign_seed), BoxKey(enc_secret))


# --- device ids and fingerprints ----------------------------------------------------------


@given(seeds, seeds)
def test_device_id_definition(sign_seed: bytes, enc_secret: bytes) -> None:
    keys = device(sign_seed, enc_secret)
    pub = keys.public
    assert len(pub.device_id) == DEVICE_ID_LEN == 16
    assert pub.device_id == crypto.sha256(crypto.CTX_KEY_ID, pub.sign_pk, pub.enc_pk)[:16]
    assert keys.device_id == pub.device_id


@given(seeds, seeds, seeds, seeds)
def test_device_id_and_fingerprint_change_if_either_key_changes(
    sign_a: bytes, enc_a: bytes, sign_b: bytes, enc_b: bytes
) -> None:
    base = device(sign_a, enc_a).public
    variants = []
    if sign_b != sign_a:
        variants.append(device(sign_b, enc_a).public)
    if enc_b != enc_a:
        variants.append(device(sign_a, enc_b).public)
    for other in variants:
        assert other.device_id != base.device_id
        assert other.fingerprint != base.fingerprint


@given(seeds, seeds)
def test_fingerprint_format(sign_seed: bytes, enc_secret: bytes) -> None:
    pub = device(sign_seed, enc_secret).public
    assert FINGERPRINT_RE.fullmatch(pub.fingerprint)
    digest = crypto.sha256(crypto.CTX_FINGERPRINT, pub.sign_pk, pub.enc_pk)
    assert pub.fingerprint == readable_digits(digest)


def test_fingerprint_is_not_the_device_id_in_digits(rng: Rng) -> None:
    pub = DeviceKeys.generate(rng).public
    assert pub.fingerprint != readable_digits(pub.device_id)


def test_readable_digits_known_values() -> None:
    assert readable_digits(bytes(32)) == " ".join(["00000"] * 6)
    # 0xffffffffff = 1099511627775, whose last five digits are 27775.
    assert readable_digits(b"\xff" * 32) == " ".join(["27775"] * 6)
    # 0x0001020304 = 16909060 and 0x0506070809 = 21575960585.
    assert readable_digits(bytes(range(32)), groups=2) == "09060 60585"


@given(st.binary(max_size=64), st.integers(1, 6))
def test_readable_digits_shape(digest: bytes, groups: int) -> None:
    text = readable_digits(digest, groups)
    assert re.fullmatch(r"[0-9]{5}( [0-9]{5})*", text)
    assert len(text.split(" ")) == groups


# --- DevicePublic: construction and JSON ----------------------------------------------------


@given(seeds, seeds)
def test_device_public_json_round_trip(sign_seed: bytes, enc_secret: bytes) -> None:
    pub = device(sign_seed, enc_secret).public
    wire = canonical(pub.to_json())
    assert wire == b'{"enc":"%s","sign":"%s"}' % (
        b64e(pub.enc_pk).encode(),
        b64e(pub.sign_pk).encode(),
    )
    again = DevicePublic.from_json(parse(wire))
    assert again == pub
    assert again.device_id == pub.device_id
    assert canonical(again.to_json()) == wire


def test_device_public_is_frozen_and_keyword_only(rng: Rng) -> None:
    pub = DeviceKeys.generate(rng).public
    with pytest.raises(dataclasses.FrozenInstanceError):
        pub.sign_pk = bytes(32)  # type: ignore[misc]
    with pytest.raises(TypeError):
        DevicePublic(pub.sign_pk, pub.enc_pk)  # type: ignore[call-arg]
    assert not hasattr(pub, "__dict__")


def _good_json(rng: Rng) -> dict[str, JSONValue]:
    return DeviceKeys.generate(rng).public.to_json()


def _resize(encoded: JSONValue, length: int) -> str:
    raw = b64d(encoded)
    return b64e((raw + bytes(length))[:length])


def _weak_sign_keys() -> list[bytes]:
    return [*ED25519_SMALL_ORDER, (2**255 - 19).to_bytes(32, "little")]


def _weak_enc_keys() -> list[bytes]:
    return [u_bytes(u) for u in X25519_SMALL_ORDER_U] + [b"\xff" * 32]


def test_device_public_cannot_exist_with_weak_keys(rng: Rng) -> None:
    good = DeviceKeys.generate(rng).public
    for weak in _weak_sign_keys():
        with pytest.raises(WeakKeyError):
            DevicePublic(sign_pk=weak, enc_pk=good.enc_pk)
    for weak in _weak_enc_keys():
        with pytest.raises(WeakKeyError):
            DevicePublic(sign_pk=good.sign_pk, enc_pk=weak)


def test_from_json_rejects_weak_keys(rng: Rng) -> None:
    good = _good_json(rng)
    for weak in _weak_sign_keys():
        with pytest.raises(WeakKeyError):
            DevicePublic.from_json({**good, "sign": b64e(weak)})
    for weak in _weak_enc_keys():
        with pytest.raises(WeakKeyError):
            DevicePublic.from_json({**good, "enc": b64e(weak)})


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        pytest.param(lambda j: {**j, "extra": 1}, UnknownFieldError, id="unknown-field"),
        pytest.param(lambda j: {**j, "Sign": j["sign"]}, UnknownFieldError, id="case-variant"),
        pytest.param(lambda j: {"enc": j["enc"]}, MissingFieldError, id="missing-sign"),
        pytest.param(lambda j: {"sign": j["sign"]}, MissingFieldError, id="missing-enc"),
        pytest.param(
            lambda j: {**j, "sign": _resize(j["sign"], 31)}, BadValueError, id="short-sign"
        ),
        pytest.param(lambda j: {**j, "enc": _resize(j["enc"], 33)}, BadValueError, id="long-enc"),
        pytest.param(lambda j: {**j, "enc": ""}, BadValueError, id="empty-enc"),
        pytest.param(lambda j: {**j, "sign": j["sign"] + "="}, MalformedError, id="padded"),
        pytest.param(
            lambda j: {**j, "sign": j["sign"].replace("-", "+").replace("_", "/") + "+"},
            MalformedError,
            id="standard-alphabet",
        ),
        pytest.param(lambda j: {**j, "sign": None}, WrongTypeError, id="null-sign"),
        pytest.param(lambda j: {**j, "enc": 1}, WrongTypeError, id="int-enc"),
        pytest.param(lambda j: [j["sign"], j["enc"]], WrongTypeError, id="list"),
        pytest.param(lambda j: None, WrongTypeError, id="null"),
    ],
)
def test_from_json_rejects(
    rng: Rng, mutate: Callable[[dict[str, JSONValue]], JSONValue], error: type[ProtocolError]
) -> None:
    with pytest.raises(error):
        DevicePublic.from_json(mutate(_good_json(rng)))


def test_from_json_rejects_non_zero_trailing_bits(rng: Rng) -> None:
    good = _good_json(rng)
    # 32 bytes = 43 characters with 2 spare bits in the last one.
    sign = str(good["sign"])
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    mutated = sign[:-1] + alphabet[alphabet.index(sign[-1]) | 1]
    with pytest.raises(NonCanonicalError):
        DevicePublic.from_json({**good, "sign": mutated})


def test_from_json_names_the_object_in_errors(rng: Rng) -> None:
    with pytest.raises(UnknownFieldError, match=r"^roster\.devices\[0\]: unknown field 'x'$"):
        DevicePublic.from_json({**_good_json(rng), "x": 1}, "roster.devices[0]")


field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=50),
    st.binary(min_size=30, max_size=34).map(b64e),
    st.sampled_from(ED25519_SMALL_ORDER).map(b64e),
)


@given(
    st.dictionaries(
        st.sampled_from(["sign", "enc", "extra", ""]) | st.text(max_size=4),
        field_values,
        max_size=4,
    )
    | field_values
)
def test_from_json_raises_only_protocol_errors(value: object) -> None:
    try:
        pub = DevicePublic.from_json(value)
    except ProtocolError:
        return
    assert DevicePublic.from_json(pub.to_json()) == pub


# --- DeviceKeys -------------------------------------------------------------------------


@given(st.binary(min_size=64, max_size=64))
def test_private_bytes_round_trip(data: bytes) -> None:
    keys = DeviceKeys.from_private_bytes(data)
    assert keys.private_bytes() == data
    again = DeviceKeys.from_private_bytes(keys.private_bytes())
    assert again.public == keys.public
    assert again.device_id == keys.device_id
    assert keys.public.sign_pk == SigningKey(data[:32]).public_bytes()
    assert keys.public.enc_pk == BoxKey(data[32:]).public_bytes()


@pytest.mark.parametrize("length", [0, 32, 63, 65, 128])
def test_from_private_bytes_rejects_wrong_length(length: int) -> None:
    with pytest.raises(MalformedError):
        DeviceKeys.from_private_bytes(b"\x07" * length)


def test_generate_is_deterministic_in_rng() -> None:
    a = DeviceKeys.generate(make_rng("device"))
    b = DeviceKeys.generate(make_rng("device"))
    c = DeviceKeys.generate(make_rng("other device"))
    assert a.private_bytes() == b.private_bytes()
    assert a.device_id == b.device_id != c.device_id
    assert a.public.sign_pk != a.public.enc_pk


def test_device_keys_sign_and_receive_as_their_public_half(rng: Rng) -> None:
    keys = DeviceKeys.generate(rng)
    sig = keys.signing.sign(crypto.CTX_DRAFT, b"m")
    crypto.verify(keys.public.sign_pk, crypto.CTX_DRAFT, b"m", sig)
    sealed = crypto.wrap_key(b"c" * 32, keys.public.enc_pk, rng)
    assert keys.box.unwrap(sealed) == b"c" * 32


def test_device_keys_repr_shows_the_id_only(rng: Rng) -> None:
    keys = DeviceKeys.generate(rng)
    text = repr(keys)
    assert text == f"DeviceKeys({b64e(keys.device_id)})"
    private = keys.private_bytes()
    for secret in (private[:32], private[32:]):
        assert b64e(secret) not in text
        assert secret.hex() not in text


def test_public_key_substitution_changes_the_device_id(rng: Rng) -> None:
    # A server that swaps in its own encryption key for a known device cannot keep the id.
    honest = DeviceKeys.generate(rng).public
    attacker = DeviceKeys.generate(rng).public
    swapped = DevicePublic(sign_pk=honest.sign_pk, enc_pk=attacker.enc_pk)
    assert swapped.device_id != honest.device_id
    assert swapped.fingerprint != honest.fingerprint
    assert flip_bit(honest.device_id, 0) != honest.device_id
