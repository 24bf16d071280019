"""Wycheproof and CCTV vectors through protocol.crypto: the Ed25519 verifier and both
weak-key checks give Docket's documented verdict on every one (tests/vectors/external).
"""

from __future__ import annotations

import nacl.bindings as sodium
import pytest

from protocol import crypto
from protocol.errors import BadSignatureError, ProtocolError, WeakKeyError
from tests.vectors.external import EdCase, XCase, ed25519_cases, x25519_cases

ED = ed25519_cases()
X = x25519_cases()


def test_the_vectors_are_all_there() -> None:
    assert len([c for c in ED if c.name.startswith("wycheproof")]) == 151
    assert len([c for c in ED if c.name.startswith("cctv")]) == 914
    assert len(X) == 518
    # Both verdicts occur, or the test would prove little.
    assert {c.accept for c in ED} == {True, False}
    assert {c.weak_key for c in X} == {True, False}
    assert {c.weak_key for c in ED if c.weak_key is not None} == {True, False}


def ed_verdict(case: EdCase) -> tuple[bool, str]:
    """What Docket's verifier says: (accepted, code)."""
    try:
        crypto.check_signing_key(case.public)
        crypto._raw_verify(case.public, case.message, case.signature)
    except ProtocolError as exc:
        return False, exc.code
    return True, ""


@pytest.mark.parametrize("case", ED, ids=lambda c: c.name)
def test_ed25519_vector(case: EdCase) -> None:
    accepted, code = ed_verdict(case)
    assert accepted == case.accept, code
    if case.weak_key is not None:
        weak = False
        try:
            crypto.check_signing_key(case.public)
        except WeakKeyError:
            weak = True
        assert weak == case.weak_key
        if not case.accept and not case.weak_key:
            assert code == BadSignatureError.code


@pytest.mark.parametrize("case", X, ids=lambda c: c.name)
def test_x25519_vector(case: XCase) -> None:
    if case.weak_key:
        with pytest.raises(WeakKeyError):
            crypto.check_box_key(case.public)
        with pytest.raises(WeakKeyError):
            crypto.wrap_key(bytes(32), case.public, bytes)
        return
    crypto.check_box_key(case.public)
    # libsodium, the library behind protocol.crypto, computes the vector's shared secret.
    assert sodium.crypto_scalarmult(case.private, case.public) == case.shared
