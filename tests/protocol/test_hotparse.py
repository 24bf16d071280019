"""The fast path of the draft/receipt parsers agrees with the general strict parser.

Differential: for every input, the fast path (:func:`protocol.hotparse.parse_hot`, which
dispatches to the one of :mod:`protocol.envelope` or :mod:`protocol.receipt`) either
declines (``None``: the general parser decides) or returns exactly what
:func:`protocol.ledger.parse_entry` returns (equal object, same type, same ``raw``).  It
must never accept what the general parser rejects.  And the records' own parsers,
``from_bytes`` and ``from_json``, which take the fast path first, return or raise exactly
what the general path (``_from_parsed``) does.  Inputs: records built from field values
at and past every boundary (lengths, ranges, sortedness, kind/reason pairs, ids),
encoded canonically or not, then damaged byte by byte.  And for well-formed records the
fast path must actually be taken.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from protocol import crypto, envelope, fastpath, receipt
from protocol.encoding import MAX_SAFE_INT, JSONValue, b64e, canonical, parse
from protocol.envelope import DraftHeader
from protocol.errors import ProtocolError
from protocol.hotparse import SIG_MEMBER_HEAD, SIG_MEMBER_TAIL, parse_hot, parse_hot_signed
from protocol.ledger import parse_entry
from protocol.receipt import Receipt
from protocol.records import signing_bytes


def _check(raw: bytes) -> None:
    hot = parse_hot(raw)
    if hot is None:
        return
    try:
        general = parse_entry(raw)
    except ProtocolError as exc:  # pragma: no cover - the failure being tested for
        raise AssertionError(f"fast path accepted what parse_entry rejects: {exc!r}") from exc
    assert type(hot) is type(general)
    assert hot == general
    assert hot.raw == general.raw == raw
    # Built slot by slot (fastpath.slot_writers): every field as the constructor sets it,
    # those excluded from == too (raw, and a draft's leaf cache still empty).
    for f in dataclasses.fields(general):
        assert getattr(hot, f.name) == getattr(general, f.name), f.name
    # The signature offset: cutting the member there gives exactly the signed bytes.
    signed = parse_hot_signed(raw)
    assert signed is not None and signed[0] == hot
    offset = signed[1]
    assert raw[offset : offset + 86] == b64e(hot.sig).encode()
    obj = parse(raw)
    assert isinstance(obj, dict)
    assert raw[: offset - SIG_MEMBER_HEAD] + raw[offset + SIG_MEMBER_TAIL :] == signing_bytes(obj)


_RECORDS: tuple[type[DraftHeader] | type[Receipt], ...] = (DraftHeader, Receipt)


def _outcome(parse_it: Callable[..., DraftHeader | Receipt], *args: object) -> object:
    """What ``parse_it(*args)`` returns, as the type and every field's value (those
    excluded from ``==`` too), or the error it raises: its type and message."""
    try:
        record = parse_it(*args)
    except ProtocolError as exc:
        return type(exc), str(exc)
    return type(record), [getattr(record, f.name) for f in dataclasses.fields(record)]


def _general(cls: type[DraftHeader] | type[Receipt], raw: bytes) -> DraftHeader | Receipt:
    return cls._from_parsed(parse(raw), raw)


def _check_parsers(raw: bytes) -> None:
    """Each record's own ``from_bytes`` (fast path first) returns or raises exactly what
    its general path does, for any bytes, and so does ``from_json`` for what they parse
    to."""
    for cls in _RECORDS:
        assert _outcome(cls.from_bytes, raw) == _outcome(_general, cls, raw)
    try:
        obj = parse(raw)
    except ProtocolError:
        return
    _check_json_parsers(obj)


def _check_json_parsers(obj: JSONValue) -> None:
    """``from_json`` (fast path first) returns or raises what its general path does."""
    for cls in _RECORDS:
        assert _outcome(cls.from_json, obj) == _outcome(cls._from_parsed, obj, None)


def _b64(n: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=n, max_size=n).map(b64e)


# Mostly valid values, sometimes one step outside.
def _bytes_field(n: int) -> st.SearchStrategy[JSONValue]:
    return st.one_of(
        _b64(n),
        _b64(n),
        _b64(n),
        st.integers(0, 40).flatmap(_b64),
        # base64url with non-zero spare bits, padding, or the standard alphabet
        _b64(n).map(lambda s: s[:-1] + "B"),
        _b64(n).map(lambda s: s + "="),
        st.binary(min_size=n, max_size=n).map(lambda b: base64.b64encode(b).decode().rstrip("=")),
        st.integers(),
        st.none(),
    )


_INTS = st.one_of(
    st.integers(0, 3),
    st.integers(0, 2**20),
    st.sampled_from([MAX_SAFE_INT - 1, MAX_SAFE_INT, MAX_SAFE_INT + 1, 10**16, -1, -(2**53)]),
    st.integers(crypto.AEAD_OVERHEAD - 2, crypto.AEAD_OVERHEAD + 2),
)
_INT_FIELD = st.one_of(_INTS, _INTS, _INTS, st.booleans(), st.text(max_size=3), st.none())
_IDS = st.one_of(
    st.sampled_from(["plenary", "wg-legal", "a", "a.b_c-d", "9", "A", "-x", "x-", "", "a" * 64]),
    st.just("b" * 65),
    st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}[a-z0-9]", fullmatch=True),
)


@st.composite
def _list_field(draw: st.DrawFn, n: int, lo: int, hi: int) -> JSONValue:
    items = draw(st.lists(st.binary(min_size=n, max_size=n), min_size=lo, max_size=hi))
    how = draw(st.sampled_from(["sorted", "sorted", "raw", "dup"]))
    if how == "sorted":
        items = sorted(set(items))
    elif how == "dup" and items:
        items = sorted([*items, items[0]])
    return [b64e(i) for i in items]


@st.composite
def receipts(draw: st.DrawFn, valid: bool = False) -> dict[str, JSONValue]:
    kind = draw(st.sampled_from(["received", "acknowledged", "rejected"]))
    obj: dict[str, JSONValue] = {
        "commit": draw(_b64(32)),
        "ct_hash": draw(_b64(32)),
        "device": draw(_b64(16)),
        "entry": draw(_b64(32)),
        "index": draw(st.integers(0, MAX_SAFE_INT)),
        "kind": kind,
        "reason": "decryption_failed" if kind == "rejected" else None,
        "sig": draw(_b64(64)),
        "t": "receipt",
        "talks": draw(_b64(32)),
        "time": draw(st.integers(0, MAX_SAFE_INT)),
        "v": 1,
    }
    if valid:
        return obj
    for key in draw(st.sets(st.sampled_from(sorted(obj)), max_size=2)):
        obj[key] = draw(_mutant(key))
    return obj


@st.composite
def drafts(draw: st.DrawFn, valid: bool = False) -> dict[str, JSONValue]:
    version = draw(st.integers(1, 3))
    hashes = st.binary(min_size=32, max_size=32)
    parents = sorted(set(draw(st.lists(hashes, min_size=1, max_size=3)))) if version > 1 else []
    devices = st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=6)
    recipients = sorted(set(draw(devices)))
    obj: dict[str, JSONValue] = {
        "channel": draw(st.sampled_from(["plenary", "wg-legal", "bilateral-alpha", "x"])),
        "commit": draw(_b64(32)),
        "counter": draw(st.integers(1, MAX_SAFE_INT)),
        "ct_hash": draw(_b64(32)),
        "ct_len": draw(st.integers(crypto.AEAD_OVERHEAD, 2**26)),
        "draft": draw(_b64(16)),
        "msg": draw(_b64(16)),
        "parents": [b64e(p) for p in parents],
        "recipients": [b64e(r) for r in recipients],
        "roster": draw(_b64(32)),
        "sender": draw(_b64(16)),
        "sig": draw(_b64(64)),
        "t": "draft",
        "talks": draw(_b64(32)),
        "time": draw(st.integers(0, MAX_SAFE_INT)),
        "v": 1,
        "version": version,
        "wrapped": draw(_b64(32)),
    }
    if valid:
        return obj
    for key in draw(st.sets(st.sampled_from(sorted(obj)), max_size=2)):
        obj[key] = draw(_mutant(key))
    if draw(st.booleans()):  # version and parents out of step
        obj["version"] = draw(st.integers(1, 3))
    return obj


def _mutant(key: str) -> st.SearchStrategy[JSONValue]:
    """Another value for ``key``: often almost right, sometimes anything."""
    by_key: dict[str, st.SearchStrategy[JSONValue]] = {
        "commit": _bytes_field(32),
        "ct_hash": _bytes_field(32),
        "entry": _bytes_field(32),
        "roster": _bytes_field(32),
        "talks": _bytes_field(32),
        "wrapped": _bytes_field(32),
        "device": _bytes_field(16),
        "sender": _bytes_field(16),
        "draft": _bytes_field(16),
        "msg": _bytes_field(16),
        "sig": _bytes_field(64),
        "index": _INT_FIELD,
        "time": _INT_FIELD,
        "counter": _INT_FIELD,
        "ct_len": _INT_FIELD,
        "version": _INT_FIELD,
        "v": _INT_FIELD,
        "kind": st.sampled_from(["received", "acknowledged", "rejected", "other", "", 1]),
        "reason": st.one_of(
            st.none(), st.sampled_from(["decryption_failed", "x", "", "A", "a" * 65, "a" * 64])
        ),
        "t": st.sampled_from(["draft", "receipt", "roster", "x"]),
        "channel": _IDS,
        "parents": st.one_of(_list_field(32, 0, 17), st.just("x")),
        "recipients": st.one_of(_list_field(16, 0, 5), st.just([]), st.just(None)),
    }
    return st.one_of(by_key.get(key, st.none()), st.none())


@st.composite
def damaged(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` with one byte flipped, inserted or deleted, or a slice cut out."""
    if not raw:
        return raw
    at = draw(st.integers(0, len(raw) - 1))
    how = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "space"]))
    if how == "flip":
        return raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    if how == "insert":
        return raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at:]
    if how == "delete":
        return raw[:at] + raw[at + 1 :]
    if how == "space":
        return raw[:at] + b" " + raw[at:]
    return raw[:at]


def _encode(obj: dict[str, JSONValue], sort: bool) -> bytes | None:
    try:
        if sort:
            return canonical(obj)
    except ProtocolError:
        return None
    return json.dumps(obj, separators=(",", ":")).encode()


@settings(max_examples=400, deadline=None)
@given(st.one_of(receipts(), drafts()), st.booleans(), st.data())
def test_fast_path_never_disagrees_with_parse_entry(
    obj: dict[str, JSONValue], damage: bool, data: st.DataObject
) -> None:
    raw = _encode(obj, sort=data.draw(st.integers(0, 9)) > 0)
    assume(raw is not None)
    assert raw is not None
    if damage:
        raw = data.draw(damaged(raw))
    _check(raw)
    _check_parsers(raw)
    _check_json_parsers(obj)


@settings(max_examples=200, deadline=None)
@given(st.one_of(receipts(valid=True), drafts(valid=True)))
@example({})
def test_well_formed_records_take_the_fast_path(obj: dict[str, JSONValue]) -> None:
    if not obj:
        return
    raw = canonical(obj)
    hot = parse_hot(raw)
    assert hot is not None
    assert hot == parse_entry(raw)
    _check(raw)
    # The records' own parsers take it too: with the general path out of reach, they
    # still build the same record.
    cls = type(hot)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cls, "_from_parsed", _unreachable)
        assert cls.from_bytes(raw) == hot
        assert cls.from_json(obj) == hot


def _unreachable(*args: object) -> None:
    raise AssertionError("took the general path")


@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    for text in (raw, b'{"commit":"' + raw, b'{"channel":"' + raw):
        _check(text)
        _check_parsers(text)


def test_decode_memo_is_bounded_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath, "MEMO_MAX", 4)
    fastpath.MEMO.clear()
    values = [bytes([i]) * 32 for i in range(10)]
    for v in values + values:
        assert fastpath.memo_decode(b64e(v).encode()) == v
        assert len(fastpath.MEMO) <= 4
    fastpath.MEMO.clear()


def test_only_exact_bytes_are_kept() -> None:
    raw = canonical(
        {
            "commit": b64e(bytes(32)),
            "ct_hash": b64e(bytes(32)),
            "device": b64e(bytes(16)),
            "entry": b64e(bytes(32)),
            "index": 1,
            "kind": "received",
            "reason": None,
            "sig": b64e(bytes(64)),
            "t": "receipt",
            "talks": b64e(bytes(32)),
            "time": 2,
            "v": 1,
        }
    )
    assert parse_hot(raw) is not None
    assert parse_hot(bytearray(raw)) is None  # type: ignore[arg-type]
    assert parse_hot(memoryview(raw)) is None  # type: ignore[arg-type]
    assert receipt._hot_receipt(bytearray(raw)) is None  # type: ignore[arg-type]
    # from_bytes then takes the general path, which keeps a copy as exact bytes.
    kept = Receipt.from_bytes(bytearray(raw))  # type: ignore[arg-type]
    assert type(kept.raw) is bytes and kept == Receipt.from_bytes(raw)


def test_recipient_memo_is_bounded_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "_RECIPIENTS_MAX", 3)
    envelope._RECIPIENTS.clear()
    lists = [sorted(bytes([i, j]) * 8 for j in range(i + 1)) for i in range(6)]
    texts = [",".join(f'"{b64e(d)}"' for d in ids).encode() for ids in lists]
    for ids, text in [*zip(lists, texts, strict=True), *zip(lists, texts, strict=True)]:
        assert envelope._recipients(text) == tuple(ids)
        assert len(envelope._RECIPIENTS) <= 3
    unsorted = f'"{b64e(bytes(16))}","{b64e(bytes(16))}"'.encode()  # a repeat: not strictly
    assert envelope._recipients(unsorted) is None
    assert envelope._recipients(unsorted) is None  # (memoised)
    envelope._RECIPIENTS.clear()


def test_records_are_built_slot_by_slot() -> None:
    """The builders are in use for both record types (a change to either class's fields
    switches them back to the constructor: update the builder beside the class then)."""
    assert fastpath.slot_writers(Receipt, receipt._RECEIPT_FIELDS) is not None
    assert fastpath.slot_writers(DraftHeader, envelope._DRAFT_FIELDS) is None  # _leaf
    assert (
        fastpath.slot_writers(DraftHeader, envelope._DRAFT_FIELDS, envelope._DRAFT_UNSET)
        is not None
    )


@settings(max_examples=50, deadline=None)
@given(st.one_of(receipts(valid=True), drafts(valid=True)))
def test_constructor_fallback_builds_the_same_records(obj: dict[str, JSONValue]) -> None:
    """If the classes change (the slot writers are refused), the constructors build them."""
    raw = canonical(obj)
    fast = parse_hot(raw)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fastpath, "slot_writers", lambda *args: None)
        patch.setattr(receipt, "_build_receipt", receipt._receipt_builder())
        patch.setattr(envelope, "_build_draft", envelope._draft_builder())
        slow = parse_hot(raw)
    assert fast is not None
    assert fast == slow == parse_entry(raw)


def test_slot_writers_only_for_the_expected_dataclass() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Plain:
        x: int
        y: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("x")

    writers = fastpath.slot_writers(Plain, ("x", "y"))
    assert writers is not None
    obj = object.__new__(Plain)
    for write, value in zip(writers, (1, 2), strict=True):
        write(obj, value)
    assert obj == Plain(x=1, y=2)
    assert fastpath.slot_writers(Plain, ("y", "x")) is None  # another order
    assert fastpath.slot_writers(Plain, ("x",)) is None  # another set of fields

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    assert fastpath.slot_writers(NoSlots, ("x",)) is None

    @dataclasses.dataclass(frozen=True, slots=True)
    class OwnInit:
        x: int

        def __init__(self, x: int) -> None:
            object.__setattr__(self, "x", x + 1)

    assert fastpath.slot_writers(OwnInit, ("x",)) is None

    @dataclasses.dataclass(frozen=True, slots=True)
    class Defaulted:
        x: int
        cache: int = dataclasses.field(default=0, init=False)

    assert fastpath.slot_writers(Defaulted, ("x",), ("cache",)) is None  # default not None
    assert fastpath.slot_writers(Defaulted, ("x", "cache")) is None  # not an argument
    assert fastpath.slot_writers(int, ("x",)) is None  # not a dataclass


def test_builders_run_the_class_checks() -> None:
    """``__post_init__`` runs as in the constructor: a rejected receipt without a reason
    (which the pattern alone allows) is declined, and the general parser refuses it."""
    obj: dict[str, JSONValue] = {
        "commit": b64e(bytes(32)),
        "ct_hash": b64e(bytes(32)),
        "device": b64e(bytes(16)),
        "entry": b64e(bytes(32)),
        "index": 1,
        "kind": "rejected",
        "reason": None,
        "sig": b64e(bytes(64)),
        "t": "receipt",
        "talks": b64e(bytes(32)),
        "time": 2,
        "v": 1,
    }
    raw = canonical(obj)
    assert parse_hot(raw) is None
    with pytest.raises(ProtocolError):
        parse_entry(raw)
    assert parse_hot(canonical({**obj, "reason": "decryption_failed"})) is not None


_INT_MEMBERS = {"receipt": ("index", "time"), "draft": ("counter", "ct_len", "time", "version")}


@settings(max_examples=30, deadline=None)
@given(st.one_of(receipts(valid=True), drafts(valid=True)))
def test_integer_past_the_json_range_is_declined(obj: dict[str, JSONValue]) -> None:
    """``canonical`` cannot write an integer past 2**53-1, so the generators above never
    give one in canonical-looking text; written in by hand (16 digits, so the pattern
    matches), the fast path must decline it and every parser refuse it."""
    raw = canonical(obj)
    for name in _INT_MEMBERS[str(obj["t"])]:
        member = b'"%s":%d' % (name.encode(), obj[name])
        for value in (MAX_SAFE_INT + 1, 10**16 - 1):
            bad = raw.replace(member, b'"%s":%d' % (name.encode(), value), 1)
            assert bad != raw
            assert parse_hot(bad) is None
            _check_parsers(bad)
