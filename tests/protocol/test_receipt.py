"""Receipts and acceptance promises (protocol/receipt.py): round trips, signature
coverage, binding to exactly one draft, context separation."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.encoding import JSONValue, b64e, canonical
from protocol.errors import (
    BadSignatureError,
    BadValueError,
    ProtocolError,
    ReceiptMismatchError,
    UnknownFieldError,
    WrongTalksError,
)
from protocol.keys import DeviceKeys
from protocol.receipt import (
    ACKNOWLEDGED,
    RECEIPT_KINDS,
    RECEIVED,
    REJECTED,
    Promise,
    Receipt,
    make_promise,
    make_receipt,
    verify_receipt,
)
from protocol.records import verify_record
from tests.helpers import make_rng
from tests.protocol.builders import Sent, Talks, leaf_paths, mutations, resign, standard

reasons = st.from_regex(r"[a-z0-9_]{1,64}", fullmatch=True)
OUTSIDER = DeviceKeys.generate(make_rng("test_receipt/outsider"))


@functools.cache
def scenario() -> tuple[Talks, Sent, Sent]:
    """The standard talks plus a second draft in the same channel."""
    t, sent, _ = standard("test_receipt/standard")
    second = t.send(t.people["sa"].device, "plenary", "Counter-proposal")
    return t, sent, second


def receipt_for(sent: Sent, device: DeviceKeys, kind: str = RECEIVED, **kw: object) -> Receipt:
    return make_receipt(
        device=device,
        header=sent.sealed.header,
        index=sent.index,
        kind=kind,
        time=5,
        reason=kw.get("reason"),  # type: ignore[arg-type]
    )


# --- round trips --------------------------------------------------------------------------


@given(
    kind=st.sampled_from(RECEIPT_KINDS),
    reason=reasons,
    index=st.integers(0, 2**53 - 1),
    time=st.integers(0, 2**53 - 1),
    who=st.sampled_from(["na", "nb", "sa", "sh", "nh", "med"]),
)
def test_receipt_round_trips(kind: str, reason: str, index: int, time: int, who: str) -> None:
    t, sent, _ = scenario()
    receipt = make_receipt(
        device=t.people[who].device,
        header=sent.sealed.header,
        index=index,
        kind=kind,
        time=time,
        reason=reason if kind == REJECTED else None,
    )
    again = Receipt.from_json(receipt.to_json())
    assert again == receipt
    assert again.to_bytes() == receipt.to_bytes() == canonical(receipt.to_json())
    assert Receipt.from_bytes(receipt.to_bytes()) == receipt
    assert receipt.entry == sent.leaf
    assert receipt.commit == sent.sealed.header.commit
    # make_receipt assembles the bytes itself: they must carry a valid signature too.
    verify_receipt(
        receipt, signer=t.people[who].device.public, header=sent.sealed.header, index=index
    )


@pytest.mark.parametrize(("index", "time"), [(-1, 5), (2**53, 5), (0, -1), (0, 2**53)])
def test_receipt_integers_outside_the_json_range_are_refused(index: int, time: int) -> None:
    t, sent, _ = scenario()
    with pytest.raises(BadValueError):
        make_receipt(
            device=t.people["nb"].device,
            header=sent.sealed.header,
            index=index,
            kind=RECEIVED,
            time=time,
        )


@given(
    origin=st.text(max_size=200),
    index=st.integers(0, 2**53 - 1),
    leaf=st.binary(min_size=32, max_size=32),
    time=st.integers(0, 2**53 - 1),
)
def test_promise_round_trips(origin: str, index: int, leaf: bytes, time: int) -> None:
    t, _, _ = scenario()
    promise = make_promise(key=t.log_key, origin=origin, index=index, leaf=leaf, time=time)
    again = Promise.from_json(promise.to_json())
    assert again == promise
    assert canonical(again.to_json()) == canonical(promise.to_json()) == promise.raw
    promise.verify(t.log_key.public_bytes())


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (REJECTED, None),
        (RECEIVED, "bad_signature"),
        (ACKNOWLEDGED, "x"),
        ("read", None),
        (REJECTED, "Not A Code"),
        (REJECTED, ""),
    ],
)
def test_receipt_invariants(kind: str, reason: str | None) -> None:
    t, sent, _ = scenario()
    with pytest.raises(BadValueError):
        receipt_for(sent, t.people["nb"].device, kind, reason=reason)


def test_rejected_receipt_carries_the_error_code() -> None:
    t, sent, _ = scenario()
    r = receipt_for(sent, t.people["nb"].device, REJECTED, reason="commitment_mismatch")
    assert r.reason == "commitment_mismatch"
    verify_receipt(
        r, signer=t.people["nb"].device.public, header=sent.sealed.header, index=sent.index
    )


# --- verification -------------------------------------------------------------------------


def test_receipt_verifies_for_every_recipient_and_kind() -> None:
    t, sent, _ = scenario()
    for device_id in sent.sealed.header.recipients:
        dev = t.keys[device_id]
        for kind in RECEIPT_KINDS:
            r = receipt_for(sent, dev, kind, reason="x" if kind == REJECTED else None)
            verify_receipt(r, signer=dev.public, header=sent.sealed.header, index=sent.index)


def test_receipt_from_another_draft_is_refused() -> None:
    t, sent, second = scenario()
    dev = t.people["nb"].device
    r = receipt_for(second, dev)
    with pytest.raises(ReceiptMismatchError):
        verify_receipt(r, signer=dev.public, header=sent.sealed.header, index=sent.index)
    with pytest.raises(ReceiptMismatchError):
        verify_receipt(r, signer=dev.public, header=sent.sealed.header, index=second.index)


def test_receipt_with_wrong_index_is_refused() -> None:
    t, sent, _ = scenario()
    dev = t.people["nb"].device
    r = receipt_for(sent, dev)
    with pytest.raises(ReceiptMismatchError):
        verify_receipt(r, signer=dev.public, header=sent.sealed.header, index=sent.index + 1)


@pytest.mark.parametrize("field", ["entry", "ct_hash", "commit", "index"])
def test_receipt_binding_each_field(field: str) -> None:
    """A receipt signed by a real recipient but binding the wrong value of one field."""
    t, sent, second = scenario()
    dev = t.people["nb"].device
    obj = receipt_for(sent, dev).to_json()
    other = receipt_for(second, dev).to_json()
    obj[field] = other[field]
    bad = Receipt.from_json(resign(obj, dev.signing, crypto.CTX_RECEIPT))
    with pytest.raises(ReceiptMismatchError):
        verify_receipt(bad, signer=dev.public, header=sent.sealed.header, index=sent.index)


def test_receipt_from_non_recipient_is_refused() -> None:
    t, sent, _ = scenario()
    r = receipt_for(sent, OUTSIDER)
    with pytest.raises(ReceiptMismatchError):
        verify_receipt(r, signer=OUTSIDER.public, header=sent.sealed.header, index=sent.index)


def test_receipt_with_other_talks_is_refused() -> None:
    t, sent, _ = scenario()
    dev = t.people["nb"].device
    obj = {**receipt_for(sent, dev).to_json(), "talks": b64e(bytes(32))}
    bad = Receipt.from_json(resign(obj, dev.signing, crypto.CTX_RECEIPT))
    with pytest.raises(WrongTalksError):
        verify_receipt(bad, signer=dev.public, header=sent.sealed.header, index=sent.index)


def test_signer_must_be_the_receipt_device() -> None:
    t, sent, _ = scenario()
    r = receipt_for(sent, t.people["nb"].device)
    with pytest.raises(BadValueError):
        verify_receipt(
            r, signer=t.people["sa"].device.public, header=sent.sealed.header, index=sent.index
        )


def test_receipt_signed_by_another_key_is_refused() -> None:
    """Receipting as someone else: sa signs a receipt naming nb's device."""
    t, sent, _ = scenario()
    obj = receipt_for(sent, t.people["nb"].device).to_json()
    forged = Receipt.from_json(resign(obj, t.people["sa"].device.signing, crypto.CTX_RECEIPT))
    with pytest.raises(BadSignatureError):
        verify_receipt(
            forged, signer=t.people["nb"].device.public, header=sent.sealed.header, index=sent.index
        )


# --- signature coverage -------------------------------------------------------------------


@pytest.mark.parametrize("kind", RECEIPT_KINDS)
def test_every_receipt_field_is_covered_by_the_signature(kind: str) -> None:
    t, sent, _ = scenario()
    dev = t.people["nb"].device
    receipt = receipt_for(sent, dev, kind, reason="decryption_failed" if kind == REJECTED else None)
    obj = receipt.to_json()
    seen = set()
    for path, _what, mutated in mutations(obj):
        assert isinstance(mutated, dict)
        with pytest.raises(BadSignatureError):
            verify_record(dev.public.sign_pk, crypto.CTX_RECEIPT, mutated)
        with pytest.raises(ProtocolError):
            verify_receipt(
                Receipt.from_json(mutated),
                signer=dev.public,
                header=sent.sealed.header,
                index=sent.index,
            )
        seen.add(path)
    assert set(leaf_paths(obj)) <= seen


def test_every_promise_field_is_covered_by_the_signature() -> None:
    t, _, _ = scenario()
    promise = t.promises[3]
    obj = promise.to_json()
    seen = set()
    for path, _what, mutated in mutations(obj):
        assert isinstance(mutated, dict)
        with pytest.raises(BadSignatureError):
            verify_record(t.log_key.public_bytes(), crypto.CTX_PROMISE, mutated)
        with pytest.raises(ProtocolError):
            Promise.from_json(mutated).verify(t.log_key.public_bytes())
        seen.add(path)
    assert set(leaf_paths(obj)) <= seen


@pytest.mark.parametrize(
    "context", [c for c in crypto.ALL_CONTEXTS if c != crypto.CTX_RECEIPT], ids=repr
)
def test_receipt_signed_under_another_context_is_refused(context: bytes) -> None:
    t, sent, _ = scenario()
    dev = t.people["nb"].device
    moved = Receipt.from_json(resign(receipt_for(sent, dev).to_json(), dev.signing, context))
    with pytest.raises(BadSignatureError):
        verify_receipt(moved, signer=dev.public, header=sent.sealed.header, index=sent.index)


@pytest.mark.parametrize(
    "context", [c for c in crypto.ALL_CONTEXTS if c != crypto.CTX_PROMISE], ids=repr
)
def test_promise_signed_under_another_context_is_refused(context: bytes) -> None:
    t, _, _ = scenario()
    moved = Promise.from_json(resign(t.promises[1].to_json(), t.log_key, context))
    with pytest.raises(BadSignatureError):
        moved.verify(t.log_key.public_bytes())


def test_promise_by_another_key_is_refused() -> None:
    t, _, _ = scenario()
    with pytest.raises(BadSignatureError):
        t.promises[1].verify(t.mediator.device.public.sign_pk)


def test_every_logged_entry_has_a_matching_promise() -> None:
    t, _, _ = scenario()
    assert len(t.promises) == t.tree.size
    for i, promise in enumerate(t.promises):
        promise.verify(t.genesis.log_key)
        assert (promise.index, promise.leaf, promise.origin) == (
            i,
            t.tree.leaf(i),
            t.genesis.origin,
        )


def test_unknown_fields_are_refused() -> None:
    t, sent, _ = scenario()
    dev = t.people["nb"].device
    obj: dict[str, JSONValue] = {**receipt_for(sent, dev).to_json(), "note": "x"}
    with pytest.raises(UnknownFieldError):
        Receipt.from_json(resign(obj, dev.signing, crypto.CTX_RECEIPT))
    pobj: dict[str, JSONValue] = {**t.promises[0].to_json(), "note": "x"}
    with pytest.raises(UnknownFieldError):
        Promise.from_json(resign(pobj, t.log_key, crypto.CTX_PROMISE))
