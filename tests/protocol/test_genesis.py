"""The talks genesis (protocol/genesis.py): round trips, signature coverage, the pin."""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.encoding import JSONValue, canonical, parse
from protocol.errors import (
    BadNameError,
    BadSignatureError,
    BadValueError,
    ProtocolError,
    UnknownFieldError,
    WrongTalksError,
)
from protocol.genesis import (
    ORIGIN_RE,
    WITNESS_NAME_RE,
    ExternalWitness,
    Genesis,
    WitnessPolicy,
    found,
    witness_name,
)
from protocol.keys import DeviceKeys
from protocol.merkle import leaf_hash
from protocol.names import check_name
from protocol.records import ID_RE, NAME_MAX, verify_record
from tests.helpers import make_rng
from tests.protocol.builders import Talks, leaf_paths, mutations, resign

_RNG = make_rng("test_genesis/keys")
KEYS = [DeviceKeys.generate(_RNG) for _ in range(4)]
WITNESS_KEYS = [crypto.SigningKey.generate(_RNG) for _ in range(6)]
LOG_KEY = crypto.SigningKey.generate(_RNG)

ids = st.from_regex(ID_RE, fullmatch=True)


def _is_name(text: str) -> bool:
    try:
        check_name(text, "name")
    except BadNameError:
        return False
    return True


# Display names as protocol.names allows them: NFC, no control, format or invisible
# characters, no outer white space.
names = (
    st.text(
        st.characters(exclude_categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Co", "Cn"]),
        min_size=1,
        max_size=NAME_MAX,
    )
    .map(lambda s: unicodedata.normalize("NFC", s).strip()[:NAME_MAX])
    .filter(_is_name)
)
origins = st.from_regex(ORIGIN_RE, fullmatch=True)
times = st.integers(0, 2**53 - 1)


@st.composite
def policies(draw: st.DrawFn) -> WitnessPolicy:
    witness_names = draw(
        st.lists(st.from_regex(WITNESS_NAME_RE, fullmatch=True), unique=True, max_size=6)
    )
    external = tuple(
        ExternalWitness(name=n, key=WITNESS_KEYS[i].public_bytes())
        for i, n in enumerate(witness_names)
    )
    return WitnessPolicy(quorum=draw(st.integers(1, 64)), external=external)


def make_genesis(**overrides: Any) -> Genesis:
    kw: dict[str, Any] = {
        "mediator_keys": KEYS[0],
        "mediator": "med",
        "mediator_name": "The Mediator",
        "origin": "docket.test/genesis",
        "title": "Talks",
        "log_key": LOG_KEY.public_bytes(),
        "witness": WitnessPolicy(quorum=2),
        "time": 1000,
    }
    kw.update(overrides)
    return found(**kw)


# --- round trips --------------------------------------------------------------------------


@given(
    key=st.sampled_from(KEYS),
    mediator=ids,
    mediator_name=names,
    origin=origins,
    title=names,
    policy=policies(),
    time=times,
)
def test_genesis_round_trips(
    key: DeviceKeys,
    mediator: str,
    mediator_name: str,
    origin: str,
    title: str,
    policy: WitnessPolicy,
    time: int,
) -> None:
    genesis = make_genesis(
        mediator_keys=key,
        mediator=mediator,
        mediator_name=mediator_name,
        origin=origin,
        title=title,
        witness=policy,
        time=time,
    )
    again = Genesis.from_json(genesis.to_json())
    assert again == genesis
    assert again.to_bytes() == genesis.to_bytes() == canonical(genesis.to_json())
    assert Genesis.from_bytes(genesis.to_bytes()) == genesis
    assert genesis.witness == policy
    assert genesis.mediator_device == key.public
    assert bytes(genesis.talks_id) == leaf_hash(genesis.to_bytes())


@given(policies())
def test_witness_policy_round_trips(policy: WitnessPolicy) -> None:
    again = WitnessPolicy.from_json(policy.to_json())
    assert again == policy
    assert canonical(again.to_json()) == canonical(policy.to_json())


def test_witness_policy_is_normalised_to_name_order() -> None:
    """Regression: a policy built with witnesses out of name order encoded sorted but kept
    its own order, so it did not round-trip (and the genesis held a different policy than
    the one passed to ``found``)."""
    a = ExternalWitness(name="a.example", key=WITNESS_KEYS[0].public_bytes())
    b = ExternalWitness(name="b.example", key=WITNESS_KEYS[1].public_bytes())
    policy = WitnessPolicy(quorum=1, external=(b, a))
    assert policy.external == (a, b)
    assert WitnessPolicy.from_json(policy.to_json()) == policy
    assert make_genesis(witness=policy).witness == policy


def test_witness_policy_rejects_unsorted_wire_form() -> None:
    value = WitnessPolicy(
        quorum=1,
        external=(
            ExternalWitness(name="a.example", key=WITNESS_KEYS[0].public_bytes()),
            ExternalWitness(name="b.example", key=WITNESS_KEYS[1].public_bytes()),
        ),
    ).to_json()
    value["external"] = value["external"][::-1]
    with pytest.raises(BadValueError):
        WitnessPolicy.from_json(value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quorum": 0},
        {"quorum": 65},
        {"quorum": 1, "external": "dup"},
    ],
)
def test_witness_policy_invariants(kwargs: dict[str, Any]) -> None:
    if kwargs.get("external") == "dup":
        w = ExternalWitness(name="w", key=WITNESS_KEYS[0].public_bytes())
        kwargs = {"quorum": 1, "external": (w, w)}
    with pytest.raises(BadValueError):
        WitnessPolicy(**kwargs)


def test_external_witness_rejects_weak_key_and_bad_name() -> None:
    with pytest.raises(ProtocolError):
        ExternalWitness(name="w", key=bytes(32))
    with pytest.raises(BadValueError):
        ExternalWitness(name="has space", key=WITNESS_KEYS[0].public_bytes())


# --- signature coverage -------------------------------------------------------------------


def test_every_genesis_field_is_covered_by_the_signature() -> None:
    genesis = make_genesis(
        witness=WitnessPolicy(
            quorum=3,
            external=(
                ExternalWitness(name="a.example", key=WITNESS_KEYS[0].public_bytes()),
                ExternalWitness(name="b.example", key=WITNESS_KEYS[1].public_bytes()),
            ),
        )
    )
    obj = genesis.to_json()
    pk = KEYS[0].public.sign_pk
    seen = set()
    count = 0
    for path, _what, mutated in mutations(obj):
        assert isinstance(mutated, dict)
        with pytest.raises(BadSignatureError):
            verify_record(pk, crypto.CTX_GENESIS, mutated)
        with pytest.raises(ProtocolError):
            Genesis.from_json(mutated)
        seen.add(path)
        count += 1
    assert set(leaf_paths(obj)) <= seen
    assert count > 20


@pytest.mark.parametrize(
    "context", [c for c in crypto.ALL_CONTEXTS if c != crypto.CTX_GENESIS], ids=repr
)
def test_genesis_signed_under_another_context_fails(context: bytes) -> None:
    obj = make_genesis().to_json()
    with pytest.raises(BadSignatureError):
        Genesis.from_json(resign(obj, KEYS[0].signing, context))


def test_genesis_signed_by_another_key_fails() -> None:
    """The mediator device named inside must be the signer: a genesis naming one device
    but signed by another (a substituted mediator key) is refused."""
    obj = make_genesis().to_json()
    with pytest.raises(BadSignatureError):
        Genesis.from_json(resign(obj, KEYS[1].signing, crypto.CTX_GENESIS))


def test_genesis_unknown_field_is_refused_even_if_signed() -> None:
    obj: dict[str, JSONValue] = {**make_genesis().to_json(), "extra": 1}
    with pytest.raises(UnknownFieldError):
        Genesis.from_json(resign(obj, KEYS[0].signing, crypto.CTX_GENESIS))


# --- the pin ------------------------------------------------------------------------------


def test_talks_id_is_the_leaf_hash_and_pins() -> None:
    genesis = make_genesis()
    genesis.check_talks(leaf_hash(genesis.to_bytes()))
    other = make_genesis(title="Other talks")
    assert other.talks_id != genesis.talks_id
    with pytest.raises(WrongTalksError):
        genesis.check_talks(other.talks_id)


def test_fingerprint_is_eight_groups_of_five_digits_and_differs_per_talks() -> None:
    a, b = make_genesis(), make_genesis(time=1001)
    for g in (a, b):
        groups = g.fingerprint.split(" ")
        assert len(groups) == 8 and all(len(x) == 5 and x.isdigit() for x in groups)
    assert a.fingerprint != b.fingerprint


def test_genesis_is_deterministic_and_log_name_is_the_origin() -> None:
    assert make_genesis().to_bytes() == make_genesis().to_bytes()
    assert make_genesis().log_name == "docket.test/genesis"
    assert witness_name("o", "north") == "o/witness/north"


def test_genesis_rejects_weak_log_key_and_bad_ids() -> None:
    with pytest.raises(ProtocolError):
        make_genesis(log_key=bytes(32))
    with pytest.raises(ProtocolError):
        make_genesis(mediator="Not An Id")
    with pytest.raises(ProtocolError):
        make_genesis(origin=" bad")


def test_builder_genesis_is_entry_zero() -> None:
    t = Talks("test_genesis/builder")
    assert t.entries[0] == t.genesis.to_bytes()
    assert t.tree.leaf(0) == t.genesis.leaf
    assert parse(t.entries[0])["t"] == "genesis"
    assert dataclasses.replace(t.genesis) == t.genesis
