"""Every parser is total: arbitrary input raises a ProtocolError or parses, nothing else.

Three kinds of input reach every parser:

* arbitrary bytes, and byte-level damage (flip, insert, delete, truncate) of valid records;
* arbitrary JSON values, encoded canonically (so they pass the JSON layer and reach the
  typed field readers), and given directly to the ``from_json`` readers (including values
  canonical JSON cannot carry: floats, huge integers, non-ASCII keys);
* structured fuzz: a valid record with one subtree replaced by arbitrary JSON.

A parser that lets ``ValueError``, ``KeyError``, ``TypeError``, ``UnicodeError``,
``IndexError``, ``struct.error`` or a library exception escape fails the test, because
Hypothesis re-raises anything that is not a :class:`ProtocolError`.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import checkpoint as cp
from protocol.encoding import JSONValue, canonical, parse
from protocol.envelope import (
    DraftHeader,
    Payload,
    decode_upload_meta,
    encode_upload,
    keys_from_json,
    keys_to_json,
    split_upload,
)
from protocol.errors import ProtocolError
from protocol.evidence import EvidenceBundle, Proven, verify_evidence
from protocol.genesis import Genesis, WitnessPolicy
from protocol.keys import DeviceId, DevicePublic
from protocol.ledger import Ledger, parse_entry, preverify
from protocol.receipt import Promise, Receipt
from protocol.roster import RosterChange
from tests.protocol.builders import JSONPath, Talks, leaf_paths, set_path, standard

# --- the parsers --------------------------------------------------------------------------

BYTE_PARSERS: dict[str, Callable[[bytes], object]] = {
    "parse": parse,
    "Genesis.from_bytes": Genesis.from_bytes,
    "RosterChange.from_bytes": RosterChange.from_bytes,
    "DraftHeader.from_bytes": DraftHeader.from_bytes,
    "Payload.from_bytes": Payload.from_bytes,
    "Receipt.from_bytes": Receipt.from_bytes,
    "parse_entry": parse_entry,
    "split_upload": split_upload,
    "decode_upload_meta": decode_upload_meta,
    "EvidenceBundle.from_bytes": EvidenceBundle.from_bytes,
    "checkpoint.parse_note": cp.parse_note,
    "Checkpoint.from_body": cp.Checkpoint.from_body,
    "Ledger.from_genesis_bytes": Ledger.from_genesis_bytes,
    "ledger.preverify": lambda data: preverify(data, {}),
}

JSON_PARSERS: dict[str, Callable[[JSONValue], object]] = {
    "Promise.from_json": Promise.from_json,
    "DevicePublic.from_json": DevicePublic.from_json,
    "keys_from_json": keys_from_json,
    "Genesis.from_json": Genesis.from_json,
    "WitnessPolicy.from_json": WitnessPolicy.from_json,
    "RosterChange.from_json": RosterChange.from_json,
    "DraftHeader.from_json": DraftHeader.from_json,
    "Receipt.from_json": Receipt.from_json,
    "Proven.from_json": lambda v: Proven.from_json(v, "fuzz"),
    "WitnessState.from_json": cp.WitnessState.from_json,
}


def total(parser: Callable[[bytes], object] | Callable[[JSONValue], object], value: object) -> bool:
    """Run ``parser``; ``True`` if it parsed, ``False`` for a ProtocolError.  Anything
    else propagates and fails the test."""
    try:
        parser(value)  # type: ignore[arg-type]
    except ProtocolError:
        return False
    return True


# --- strategies ---------------------------------------------------------------------------

safe_ints = st.integers(-(2**53) + 1, 2**53 - 1)
ascii_keys = st.text(st.characters(max_codepoint=127), max_size=12)
names_like = st.sampled_from(
    [
        "t",
        "v",
        "sig",
        "args",
        "op",
        "talks",
        "keys",
        "header",
        "entry",
        "proof",
        "index",
        "devices",
        "sign",
        "enc",
        "quorum",
        "external",
        "name",
        "key",
        "file",
        "data",
        "origin",
    ]
)
scalars = st.none() | st.booleans() | safe_ints | st.text(max_size=40)
json_values: st.SearchStrategy[JSONValue] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(names_like | ascii_keys, children, max_size=6)
    ),
    max_leaves=25,
)
wild_scalars = (
    scalars
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers()
    | st.text(st.characters(codec="utf-8"), max_size=10)
)
wild_values: st.SearchStrategy[JSONValue] = st.recursive(
    wild_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(names_like | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=20,
)


def canonical_bytes(value: JSONValue) -> bytes:
    try:
        return canonical(value, max_depth=64)
    except ProtocolError:
        return b"null"


# --- valid seeds --------------------------------------------------------------------------


SEED_KEYS: dict[DeviceId, bytes] = {}
"""Signing keys of every device of the seed talks (for :func:`preverify`)."""


@functools.cache
def seeds() -> dict[str, bytes]:
    """One valid input of every kind, from a real exchange."""
    t, sent, receipts = standard("test_parsers_fuzz/seeds")
    bundle = t.evidence(sent, receipts)
    upload = encode_upload(sent.sealed)
    n = struct.unpack(">I", upload[:4])[0]
    note = t.checkpoint()
    out = {
        "genesis": t.entries[0],
        "payload": sent.payload.to_bytes(),
        "draft": sent.sealed.header.to_bytes(),
        "receipt": t.entries[receipts[0]],
        "promise": t.promises[3].raw,
        "upload-meta": upload[4 : 4 + n],
        "keys": canonical(keys_to_json(sent.sealed.keys)),
        "device": canonical(t.mediator.device.public.to_json()),
        "evidence": bundle.to_bytes(),
        "witness-policy": canonical(t.genesis.witness.to_json()),
        "proven": canonical(bundle.roster[0].to_json()),
    }
    for i, data in enumerate(t.entries[1:8], start=1):
        out[f"roster-{i}"] = data
    SEED_KEYS.update({d: k.public.sign_pk for d, k in t.keys.items()})
    out["note"] = note.encode()
    out["checkpoint-body"] = cp.parse_note(note.encode()).text
    out["upload"] = upload
    return out


def json_seeds() -> list[str]:
    return [k for k in seeds() if k not in ("note", "checkpoint-body", "upload")]


def test_seeds_are_valid() -> None:
    s = seeds()
    Genesis.from_bytes(s["genesis"])
    Payload.from_bytes(s["payload"])
    for key in s:
        if key.startswith("roster-"):
            RosterChange.from_bytes(s[key])
    assert decode_upload_meta(s["upload-meta"])
    assert keys_from_json(parse(s["keys"]))
    Promise.from_json(parse(s["promise"]))
    verify_evidence(s["evidence"], Genesis.from_bytes(s["genesis"]).talks_id)
    cp.Checkpoint.from_body(s["checkpoint-body"])
    assert split_upload(s["upload"])


# --- arbitrary bytes ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BYTE_PARSERS))
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes(name: str, data: bytes) -> None:
    total(BYTE_PARSERS[name], data)


note_text = st.text(
    st.sampled_from(list("\u2014 \n+/=-.abcAZ09") + ["\u00e9", "\t", "\r", "\x00"]), max_size=200
)


@pytest.mark.parametrize("name", ["checkpoint.parse_note", "Checkpoint.from_body"])
@given(text=note_text)
def test_note_shaped_text(name: str, text: str) -> None:
    total(BYTE_PARSERS[name], text.encode("utf-8"))


@pytest.mark.parametrize("name", sorted(BYTE_PARSERS))
@given(value=json_values)
def test_arbitrary_json_as_canonical_bytes(name: str, value: JSONValue) -> None:
    total(BYTE_PARSERS[name], canonical_bytes(value))


@pytest.mark.parametrize("name", sorted(JSON_PARSERS))
@given(value=wild_values)
def test_arbitrary_values_to_json_readers(name: str, value: JSONValue) -> None:
    total(JSON_PARSERS[name], value)


def test_deep_nesting_and_huge_numbers() -> None:
    for data in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"1" * 5000,
        b"-" + b"9" * 17,
        b'"\\ud800"',
        b"1e999",
        b"NaN",
        b"\xef\xbb\xbf{}",
    ):
        for name, parser in BYTE_PARSERS.items():
            assert not total(parser, data), name


def test_parsers_reject_non_bytes_without_crashing() -> None:
    """The entry points that document a type check keep it (wrong types are a
    ProtocolError, not a TypeError); byte-likes are accepted where bytes are."""
    wrong: list[object] = [None, "text", 12, [], {}]
    for value in wrong:
        for name in ("parse", "checkpoint.parse_note", "Checkpoint.from_body"):
            assert not total(BYTE_PARSERS[name], value), name
    byte_likes: list[bytes | bytearray | memoryview] = [bytearray(b"{}"), memoryview(b"{}")]
    for byte_like in byte_likes:
        assert total(parse, byte_like)
        assert not total(split_upload, byte_like)


# --- damaged valid records ----------------------------------------------------------------


def _parsers_for(seed: str) -> list[Callable[[bytes], object]]:
    if seed == "note":
        return [cp.parse_note]
    if seed == "checkpoint-body":
        return [cp.Checkpoint.from_body]
    if seed == "upload":
        return [split_upload]
    return [
        BYTE_PARSERS[n]
        for n in (
            "parse",
            "parse_entry",
            "Genesis.from_bytes",
            "RosterChange.from_bytes",
            "DraftHeader.from_bytes",
            "Receipt.from_bytes",
            "Payload.from_bytes",
            "EvidenceBundle.from_bytes",
            "decode_upload_meta",
        )
    ]


@given(
    seed=st.sampled_from(sorted(seeds())),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete", "truncate"]),
            st.integers(0, 10**6),
            st.integers(1, 255),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_damaged_records(seed: str, edits: list[tuple[str, int, int]]) -> None:
    data = bytearray(seeds()[seed])
    for op, pos, byte in edits:
        if not data:
            break
        i = pos % len(data)
        if op == "flip":
            data[i] ^= byte
        elif op == "insert":
            data.insert(i, byte)
        elif op == "delete":
            del data[i]
        else:
            del data[i:]
    for parser in _parsers_for(seed):
        total(parser, bytes(data))


# --- structured fuzz ----------------------------------------------------------------------

SEED_PARSER: dict[str, Callable[[bytes], object]] = {
    "genesis": Genesis.from_bytes,
    "payload": Payload.from_bytes,
    "draft": DraftHeader.from_bytes,
    "receipt": Receipt.from_bytes,
    "promise": lambda b: Promise.from_json(parse(b)),
    "upload-meta": decode_upload_meta,
    "keys": lambda b: keys_from_json(parse(b)),
    "device": lambda b: DevicePublic.from_json(parse(b)),
    "evidence": EvidenceBundle.from_bytes,
    "witness-policy": lambda b: WitnessPolicy.from_json(parse(b)),
    "proven": lambda b: Proven.from_json(parse(b), "fuzz"),
}


def _all_paths(value: JSONValue) -> list[JSONPath]:
    paths: set[JSONPath] = set(leaf_paths(value))
    for path in list(paths):
        for i in range(len(path)):
            paths.add(path[:i])
    return sorted(paths, key=lambda p: (len(p), repr(p)))


@given(
    seed=st.sampled_from(json_seeds()),
    choice=st.integers(0, 10**6),
    replacement=json_values,
)
def test_valid_record_with_a_subtree_replaced(
    seed: str, choice: int, replacement: JSONValue
) -> None:
    value = parse(seeds()[seed], max_size=1 << 24)
    paths = _all_paths(value)
    mutated = set_path(value, paths[choice % len(paths)], replacement)
    data = canonical_bytes(mutated)
    parser = SEED_PARSER.get(seed, RosterChange.from_bytes)
    total(parser, data)
    total(parse_entry, data)
    total(lambda b: preverify(b, SEED_KEYS), data)
    # The JSON readers also see the raw value (no canonical-encoding filter in between).
    for name in (
        "Genesis.from_json",
        "RosterChange.from_json",
        "DraftHeader.from_json",
        "Receipt.from_json",
        "Promise.from_json",
    ):
        total(JSON_PARSERS[name], mutated)


@given(choice=st.integers(0, 10**6), replacement=json_values)
def test_evidence_with_a_subtree_replaced_never_escapes_verify(
    choice: int, replacement: JSONValue
) -> None:
    """The whole verifier, not only the parser, is total on structurally fuzzed bundles."""
    s = seeds()
    value = parse(s["evidence"], max_size=1 << 24)
    paths = _all_paths(value)
    data = canonical_bytes(set_path(value, paths[choice % len(paths)], replacement))
    talks = Genesis.from_bytes(s["genesis"]).talks_id
    total(lambda b: verify_evidence(b, talks), data)


@given(
    line=st.integers(0, 100),
    replacement=st.text(max_size=80) | note_text,
)
def test_note_with_a_line_replaced(line: int, replacement: str) -> None:
    lines = seeds()["note"].decode().split("\n")
    lines[line % len(lines)] = replacement
    total(cp.parse_note, "\n".join(lines).encode("utf-8", "surrogatepass"))
    body = seeds()["checkpoint-body"].decode().split("\n")
    body[line % len(body)] = replacement
    total(cp.Checkpoint.from_body, "\n".join(body).encode("utf-8", "surrogatepass"))


@given(meta=json_values, tail=st.binary(max_size=64), extra=st.integers(-8, 8))
def test_upload_framing_fuzz(meta: JSONValue, tail: bytes, extra: int) -> None:
    raw = canonical_bytes(meta)
    length = max(0, min(len(raw) + extra, 2**32 - 1))
    total(split_upload, struct.pack(">I", length) + raw + tail)


def test_ledger_is_total_on_fuzzed_entries() -> None:
    """Damaged entries applied to a live ledger raise ProtocolError and change nothing."""
    t = Talks("test_parsers_fuzz/ledger")
    t.create_delegation("north", "nh")
    t.create_channel("c", delegations=["north"], members=["med"])
    size = t.ledger.size
    for seed, data in seeds().items():
        for i in range(0, len(data), max(1, len(data) // 25)):
            damaged = bytearray(data)
            damaged[i] ^= 0x20
            total(t.ledger.apply, bytes(damaged))
        del seed
    assert t.ledger.size == size
