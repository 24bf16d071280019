"""Canonical JSON, strict base64url and the Fields reader (protocol/encoding.py)."""

from __future__ import annotations

import base64
import re
import string
from collections.abc import Callable

import pytest
import rfc8785
from hypothesis import assume, given
from hypothesis import strategies as st

from protocol.encoding import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    MAX_SAFE_INT,
    Fields,
    JSONValue,
    as_object,
    b64d,
    b64e,
    bytes_list,
    canonical,
    parse,
    str_list,
    strictly_sorted,
)
from protocol.errors import (
    BadValueError,
    MalformedError,
    MissingFieldError,
    NonCanonicalError,
    ProtocolError,
    TooDeepError,
    TooLargeError,
    UnknownFieldError,
    WrongTypeError,
)

# --- strategies -------------------------------------------------------------------------

ascii_keys = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8)
# st.text() never draws lone surrogates (category Cs is excluded by default).
json_scalars: st.SearchStrategy[JSONValue] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT),
    st.text(max_size=16),
)


def json_values(depth: int = 5) -> st.SearchStrategy[JSONValue]:
    """JSON values in the canonical domain, nested at most ``depth`` containers deep."""
    if depth == 0:
        return json_scalars
    inner = json_values(depth - 1)
    return st.one_of(
        json_scalars,
        st.lists(inner, max_size=4),
        st.dictionaries(ascii_keys, inner, max_size=4),
    )


def same(a: JSONValue, b: JSONValue) -> bool:
    """Structural equality that, unlike ``==``, tells ``True`` from ``1``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


# --- canonical JSON: property tests -----------------------------------------------------


@given(json_values())
def test_canonical_matches_rfc8785(value: JSONValue) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@given(json_values())
def test_parse_round_trips_canonical(value: JSONValue) -> None:
    assert same(parse(canonical(value)), value)


@given(json_values())
def test_canonical_is_idempotent_through_parse(value: JSONValue) -> None:
    encoded = canonical(value)
    assert canonical(parse(encoded)) == encoded


@given(st.dictionaries(ascii_keys, json_scalars, min_size=2, max_size=6))
def test_canonical_ignores_insertion_order(obj: dict[str, JSONValue]) -> None:
    items = list(obj.items())
    items.reverse()
    assert canonical(dict(items)) == canonical(obj)


# --- canonical JSON: known forms --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, b"null"),
        (True, b"true"),
        (False, b"false"),
        (0, b"0"),
        (-1, b"-1"),
        (MAX_SAFE_INT, b"9007199254740991"),
        (-MAX_SAFE_INT, b"-9007199254740991"),
        ("", b'""'),
        ("\u00e9\U0001f600", '"\u00e9\U0001f600"'.encode()),
        ('"\\/', b'"\\"\\\\/"'),
        ("\b\f\n\r\t", b'"\\b\\f\\n\\r\\t"'),
        ("\x00\x1f\x7f", b'"\\u0000\\u001f\x7f"'),
        ("\u2028\u2029", '"\u2028\u2029"'.encode()),
        ([], b"[]"),
        ({}, b"{}"),
        ({"b": 1, "a": [True, None], "": {}}, b'{"":{},"a":[true,null],"b":1}'),
        ({"B": 0, "a": 0, "_": 0}, b'{"B":0,"_":0,"a":0}'),
    ],
)
def test_canonical_known_forms(value: JSONValue, expected: bytes) -> None:
    assert canonical(value) == expected
    assert same(parse(expected), value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (1.0, WrongTypeError),
        (float("nan"), WrongTypeError),
        (b"bytes", WrongTypeError),
        ((1, 2), WrongTypeError),
        ({1, 2}, WrongTypeError),
        ({"\u00e9": 1}, MalformedError),
        ({1: 1}, MalformedError),
        (MAX_SAFE_INT + 1, BadValueError),
        (-MAX_SAFE_INT - 1, BadValueError),
        ("\ud800", MalformedError),
        (["\udfff"], MalformedError),
    ],
)
def test_canonical_rejects_values_outside_the_domain(
    value: object, error: type[ProtocolError]
) -> None:
    with pytest.raises(error):
        canonical(value)


def nested(depth: int) -> JSONValue:
    value: JSONValue = 1
    for _ in range(depth):
        value = [value]
    return value


def test_canonical_depth_limit() -> None:
    canonical(nested(DEFAULT_MAX_DEPTH))
    with pytest.raises(TooDeepError):
        canonical(nested(DEFAULT_MAX_DEPTH + 1))
    with pytest.raises(TooDeepError):
        canonical(nested(3), max_depth=2)


# --- parse: rejection of everything non-canonical ---------------------------------------

NON_CANONICAL: list[tuple[str, bytes, type[ProtocolError]]] = [
    # insignificant whitespace
    ("space-after-colon", b'{"a": 1}', NonCanonicalError),
    ("space-after-comma", b"[1, 2]", NonCanonicalError),
    ("leading-space", b" 1", NonCanonicalError),
    ("trailing-newline", b"1\n", NonCanonicalError),
    ("tab-inside-object", b'{\t"a":1}', NonCanonicalError),
    # member order and duplicates
    ("unsorted-keys", b'{"b":1,"a":2}', NonCanonicalError),
    ("duplicate-keys", b'{"a":1,"a":1}', MalformedError),
    ("duplicate-keys-nested", b'{"a":{"x":1,"x":2}}', MalformedError),
    # string escapes
    ("escaped-letter", b'"\\u0041"', NonCanonicalError),
    ("escaped-solidus", b'"\\/"', NonCanonicalError),
    ("escaped-non-ascii", b'"\\u00e9"', NonCanonicalError),
    ("uppercase-hex-escape", b'"\\u001F"', NonCanonicalError),
    ("long-form-newline", b'"\\u000a"', NonCanonicalError),
    ("escaped-surrogate-pair", b'"\\ud83d\\ude00"', NonCanonicalError),
    ("escaped-key", b'{"\\u0061":1}', NonCanonicalError),
    ("lone-high-surrogate", b'"\\ud800"', MalformedError),
    ("lone-low-surrogate", b'"\\udc00"', MalformedError),
    ("reversed-surrogate-pair", b'"\\ude00\\ud83d"', MalformedError),
    ("raw-control-character", b'"\x01"', MalformedError),
    ("raw-newline-in-string", b'"\n"', MalformedError),
    ("non-ascii-key", '{"\u00e9":1}'.encode(), MalformedError),
    # numbers
    ("float", b"1.0", MalformedError),
    ("float-in-list", b"[0.5]", MalformedError),
    ("exponent", b"1e3", MalformedError),
    ("uppercase-exponent", b"1E3", MalformedError),
    ("negative-zero", b"-0", NonCanonicalError),
    ("leading-zero", b"01", MalformedError),
    ("negative-leading-zero", b"-01", MalformedError),
    ("plus-sign", b"+1", MalformedError),
    ("nan", b"NaN", MalformedError),
    ("infinity", b"Infinity", MalformedError),
    ("negative-infinity", b"-Infinity", MalformedError),
    ("hex-number", b"0x10", MalformedError),
    ("int-above-2-53", b"9007199254740992", BadValueError),
    ("int-below-minus-2-53", b"-9007199254740992", BadValueError),
    ("int-with-5000-digits", b"7" * 5000, BadValueError),
    ("negative-int-with-5000-digits", b"-" + b"7" * 5000, BadValueError),
    # bytes that are not UTF-8
    ("invalid-utf8", b'"\xff"', MalformedError),
    ("truncated-utf8", b'"\xc3"', MalformedError),
    ("overlong-utf8-solidus", b'"\xc0\xaf"', MalformedError),
    ("utf8-encoded-surrogate", b'"\xed\xa0\x80"', MalformedError),
    ("utf8-bom", b"\xef\xbb\xbf1", MalformedError),
    ("utf16", '"a"'.encode("utf-16"), MalformedError),
    # not JSON at all
    ("empty", b"", MalformedError),
    ("trailing-comma", b"[1,]", MalformedError),
    ("single-quotes", b"'a'", MalformedError),
    ("two-values", b"1 2", MalformedError),
    ("unterminated", b'{"a":1', MalformedError),
    ("capitalised-literal", b"True", MalformedError),
    ("comment", b"1//c", MalformedError),
]


@pytest.mark.parametrize(
    ("data", "error"),
    [pytest.param(data, error, id=name) for name, data, error in NON_CANONICAL],
)
def test_parse_rejects_non_canonical_input(data: bytes, error: type[ProtocolError]) -> None:
    with pytest.raises(error):
        parse(data)


def test_error_classes_nest_as_documented() -> None:
    assert issubclass(NonCanonicalError, MalformedError)
    assert issubclass(TooDeepError, MalformedError)
    assert issubclass(TooLargeError, MalformedError)
    assert TooLargeError.status == 413


def test_parse_depth_limit_boundary() -> None:
    assert parse(canonical(nested(DEFAULT_MAX_DEPTH))) == nested(DEFAULT_MAX_DEPTH)
    with pytest.raises(TooDeepError):
        parse(b"[" * (DEFAULT_MAX_DEPTH + 1) + b"1" + b"]" * (DEFAULT_MAX_DEPTH + 1))
    with pytest.raises(TooDeepError):
        parse(b'{"a":' * 40 + b"1" + b"}" * 40)
    with pytest.raises(TooDeepError):
        parse(b"[[[1]]]", max_depth=2)


def test_parse_nesting_bomb_is_too_deep_not_recursion_error() -> None:
    # Deep enough to exhaust the interpreter's recursion limit inside json.loads.
    with pytest.raises(TooDeepError):
        parse(b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(MalformedError):
        parse(b"[" * 200_000)


def test_parse_size_limit() -> None:
    exact = b'"' + b"a" * 8 + b'"'
    assert parse(exact, max_size=len(exact)) == "a" * 8
    with pytest.raises(TooLargeError):
        parse(exact, max_size=len(exact) - 1)
    with pytest.raises(TooLargeError):
        parse(b" " * (DEFAULT_MAX_SIZE + 1))


def test_parse_accepts_bytes_like_and_nothing_else() -> None:
    assert parse(bytearray(b"[1]")) == [1]
    assert parse(memoryview(b'{"a":true}')) == {"a": True}
    for bad in ("[1]", None, 1, ["[1]"]):
        with pytest.raises(WrongTypeError):
            parse(bad)  # type: ignore[arg-type]


# --- parse: nothing but ProtocolError escapes -------------------------------------------


def _assert_parse_is_total(data: bytes) -> None:
    try:
        value = parse(data)
    except ProtocolError:
        return
    # Anything accepted must be exactly the canonical encoding of what it decodes to.
    assert canonical(value) == data


@given(st.binary(max_size=256))
def test_parse_arbitrary_bytes_raises_only_protocol_errors(data: bytes) -> None:
    _assert_parse_is_total(data)


@given(st.text(max_size=128).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_parse_arbitrary_text_raises_only_protocol_errors(data: bytes) -> None:
    _assert_parse_is_total(data)


json_ish_text = st.text(alphabet='{}[],:"\\ -+.0123456789eEaulnrtsfubdxNIy\x00\n', max_size=64)


@given(json_ish_text)
def test_parse_json_like_text_raises_only_protocol_errors(text: str) -> None:
    _assert_parse_is_total(text.encode())


@given(json_values(), st.data())
def test_parse_mutated_canonical_raises_only_protocol_errors(
    value: JSONValue, data: st.DataObject
) -> None:
    encoded = bytearray(canonical(value))
    pos = data.draw(st.integers(0, len(encoded)))
    op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
    byte = data.draw(st.integers(0, 255))
    if op == "insert":
        encoded.insert(pos, byte)
    elif pos < len(encoded):
        if op == "delete":
            del encoded[pos]
        else:
            encoded[pos] = byte
    _assert_parse_is_total(bytes(encoded))


# --- base64url ----------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_b64_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert b64d(text) == data
    assert b64d(text, length=len(data)) == data
    assert set(text) <= set(string.ascii_letters + string.digits + "-_")
    assert text == base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("AA==", MalformedError, id="padding"),
        pytest.param("AAA=", MalformedError, id="single-padding"),
        pytest.param("AA=", MalformedError, id="misplaced-padding"),
        pytest.param("+/8", MalformedError, id="standard-alphabet"),
        pytest.param("ab+c", MalformedError, id="plus"),
        pytest.param("ab/c", MalformedError, id="slash"),
        pytest.param(" AAA", MalformedError, id="leading-space"),
        pytest.param("AAA ", MalformedError, id="trailing-space"),
        pytest.param("AAAA\n", MalformedError, id="trailing-newline"),
        pytest.param("AA\nAA", MalformedError, id="embedded-newline"),
        pytest.param("A", MalformedError, id="length-1-mod-4"),
        pytest.param("AAAAA", MalformedError, id="length-5"),
        pytest.param("AB", NonCanonicalError, id="trailing-bits-1-byte"),
        pytest.param("AAB", NonCanonicalError, id="trailing-bits-2-bytes"),
        pytest.param("_x", NonCanonicalError, id="trailing-bits-high-byte"),
        pytest.param("\uff21\uff21", MalformedError, id="fullwidth-letters"),
        pytest.param("\u0663\u0663", MalformedError, id="arabic-indic-digits"),
        pytest.param("A\u0000", MalformedError, id="nul"),
    ],
)
def test_b64d_rejects(text: str, error: type[ProtocolError]) -> None:
    with pytest.raises(error):
        b64d(text)


def test_b64d_trailing_bits_example() -> None:
    # "AB" and "AA" both decode to b"\x00" with a lenient decoder; only "AA" is canonical.
    assert base64.urlsafe_b64decode("AB==") == base64.urlsafe_b64decode("AA==") == b"\x00"
    assert b64d("AA") == b"\x00"
    with pytest.raises(NonCanonicalError):
        b64d("AB")


_B64_ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


@given(st.binary(min_size=1, max_size=64).filter(lambda b: len(b) % 3 != 0), st.data())
def test_b64d_rejects_every_non_zero_trailing_bit_pattern(data: bytes, draw: st.DataObject) -> None:
    text = b64e(data)
    spare_bits = 4 if len(data) % 3 == 1 else 2
    last = _B64_ALPHABET.index(text[-1])
    assert last % (1 << spare_bits) == 0
    noise = draw.draw(st.integers(1, (1 << spare_bits) - 1))
    mutated = text[:-1] + _B64_ALPHABET[last | noise]
    assert base64.urlsafe_b64decode(mutated + "=" * (-len(mutated) % 4)) == data
    with pytest.raises(NonCanonicalError):
        b64d(mutated)


def test_b64d_length_and_type() -> None:
    assert b64d(b64e(b"\x01" * 32), length=32) == b"\x01" * 32
    assert b64d("", length=0) == b""
    for n in (0, 31, 33):
        with pytest.raises(BadValueError):
            b64d(b64e(b"\x01" * n), length=32)
    for bad in (None, 1, b"AAAA", ["AAAA"]):
        with pytest.raises(WrongTypeError):
            b64d(bad)


def test_b64d_names_the_field_in_errors() -> None:
    with pytest.raises(BadValueError, match=r"^sig: expected 64 bytes, got 1$"):
        b64d("AA", length=64, what="sig")


@given(st.text(max_size=40))
def test_b64d_arbitrary_text_raises_only_protocol_errors(text: str) -> None:
    try:
        raw = b64d(text)
    except ProtocolError:
        return
    assert b64e(raw) == text


@given(st.text(alphabet=_B64_ALPHABET + "=+/ ", max_size=40))
def test_b64d_alphabet_text_raises_only_protocol_errors(text: str) -> None:
    try:
        raw = b64d(text)
    except ProtocolError:
        return
    assert b64e(raw) == text


# --- Fields -------------------------------------------------------------------------------


def test_fields_reads_every_type() -> None:
    obj = {
        "s": "hello",
        "n": 7,
        "b": False,
        "x": b64e(b"\x01\x02"),
        "l": [1, "a"],
        "o": {"k": None},
        "v": 1,
        "null": None,
        "raw": [True],
    }
    f = Fields(obj, "thing")
    assert f.str("s") == "hello"
    assert f.int("n") == 7
    assert f.bool("b") is False
    assert f.bytes("x", length=2) == b"\x01\x02"
    assert f.list("l") == [1, "a"]
    assert f.obj("o") == {"k": None}
    f.literal("v", 1)
    assert f.opt_str("null") is None
    assert f.raw("raw") == [True]
    f.done()


def test_fields_rejects_non_objects() -> None:
    bad: object
    for bad in (None, [], "x", 1, True):
        with pytest.raises(WrongTypeError, match="^thing: expected an object$"):
            Fields(bad, "thing")


def test_fields_missing() -> None:
    f = Fields({}, "thing")
    readers: list[Callable[[], object]] = [
        lambda: f.str("a"),
        lambda: f.int("a"),
        lambda: f.bool("a"),
        lambda: f.bytes("a"),
        lambda: f.list("a"),
        lambda: f.obj("a"),
        lambda: f.raw("a"),
        lambda: f.literal("a", 1),
        lambda: f.opt_str("a"),
    ]
    for read in readers:
        with pytest.raises(MissingFieldError, match="^thing: missing field 'a'$"):
            read()


def test_fields_unknown_field_is_reported_by_done() -> None:
    f = Fields({"a": 1, "zz": 2, "b": 3}, "thing")
    assert f.int("a") == 1
    assert f.has("b")  # has() is not a read
    with pytest.raises(UnknownFieldError, match="^thing: unknown field 'b'$"):
        f.done()
    f.int("b")
    with pytest.raises(UnknownFieldError, match="'zz'"):
        f.done()
    f.int("zz")
    f.done()


def test_fields_failed_read_still_counts_as_seen() -> None:
    # A field that was looked at and rejected must not also be reported as unknown.
    f = Fields({"a": "x"}, "thing")
    with pytest.raises(WrongTypeError):
        f.int("a")
    f.done()


@pytest.mark.parametrize(
    ("value", "reader"),
    [
        (True, "int"),
        (False, "int"),
        (1.5, "int"),
        ("1", "int"),
        (None, "int"),
        (1, "bool"),
        (0, "bool"),
        ("true", "bool"),
        (1, "str"),
        (None, "str"),
        (["a"], "str"),
        (1, "bytes"),
        (None, "bytes"),
        ({}, "list"),
        ("[]", "list"),
        ([], "obj"),
        (None, "obj"),
        (1, "opt_str"),
    ],
)
def test_fields_wrong_type(value: JSONValue, reader: str) -> None:
    f = Fields({"k": value}, "thing")
    with pytest.raises(WrongTypeError, match=r"^thing\.k: "):
        getattr(f, reader)("k")


def test_fields_int_range() -> None:
    f = Fields({"lo": 3, "hi": 10, "neg": -1, "big": MAX_SAFE_INT}, "t")
    assert f.int("lo", lo=3, hi=10) == 3
    assert f.int("hi", lo=3, hi=10) == 10
    assert f.int("big") == MAX_SAFE_INT
    for key, lo, hi in (("lo", 4, 10), ("hi", 3, 9), ("neg", 0, 10)):
        with pytest.raises(BadValueError, match=r"out of range"):
            f.int(key, lo=lo, hi=hi)


def test_fields_str_max_len_and_pattern() -> None:
    f = Fields({"s": "abcd"}, "t")
    assert f.str("s", max_len=4) == "abcd"
    with pytest.raises(BadValueError, match=r"^t\.s: longer than 3$"):
        f.str("s", max_len=3)
    assert f.str("s", pattern=re.compile(r"[a-d]+")) == "abcd"
    with pytest.raises(BadValueError):
        f.str("s", pattern=re.compile(r"[a-c]+"))
    with pytest.raises(BadValueError):
        Fields({"s": "x" * 257}, "t").str("s")
    with pytest.raises(BadValueError):
        f.opt_str("s", max_len=3)


def test_fields_bytes_length_and_max_len() -> None:
    f = Fields({"b": b64e(b"\x00" * 4)}, "t")
    assert f.bytes("b", max_len=4) == b"\x00" * 4
    with pytest.raises(BadValueError, match=r"^t\.b: longer than 3 bytes$"):
        f.bytes("b", max_len=3)
    with pytest.raises(BadValueError, match=r"^t\.b: expected 5 bytes"):
        f.bytes("b", length=5)
    with pytest.raises(MalformedError):
        Fields({"b": "AA=="}, "t").bytes("b")


def test_fields_list_max_items() -> None:
    f = Fields({"l": [1, 2, 3]}, "t")
    assert f.list("l", max_items=3) == [1, 2, 3]
    with pytest.raises(BadValueError):
        f.list("l", max_items=2)


@pytest.mark.parametrize(
    ("value", "expected", "ok"),
    [
        (1, 1, True),
        ("v1", "v1", True),
        (None, None, True),
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (0, False, False),
        (2, 1, False),
        ("V1", "v1", False),
        ([1], [1], True),
        ([True], [1], True),  # literal compares the outer type only; lists of literals are rare
        (None, 0, False),
    ],
)
def test_fields_literal(value: JSONValue, expected: JSONValue, ok: bool) -> None:
    f = Fields({"k": value}, "t")
    if ok:
        f.literal("k", expected)
    else:
        with pytest.raises(BadValueError, match=r"^t\.k: expected "):
            f.literal("k", expected)


def test_list_helpers() -> None:
    pattern = re.compile(r"[a-z]+")
    assert str_list(["a", "b"], "names", pattern=pattern) == ["a", "b"]
    for bad in (["A"], [1], [None], ["a", ["b"]]):
        with pytest.raises(BadValueError):
            str_list(bad, "names", pattern=pattern)
    assert bytes_list([b64e(b"ab"), b64e(b"cd")], "ids", length=2) == [b"ab", b"cd"]
    with pytest.raises(BadValueError):
        bytes_list([b64e(b"abc")], "ids", length=2)
    with pytest.raises(WrongTypeError):
        bytes_list([1], "ids", length=2)
    strictly_sorted([], "x")
    strictly_sorted(["a", "b", "c"], "x")
    for bad_order in (["b", "a"], ["a", "a"], [b"\x02", b"\x01"]):
        with pytest.raises(NonCanonicalError):
            strictly_sorted(bad_order, "x")
    assert as_object({"a": 1}, "x") == {"a": 1}
    with pytest.raises(WrongTypeError):
        as_object([], "x")


# --- Fields-based readers: nothing but ProtocolError escapes ----------------------------

# Keys drawn mostly from the names the reader asks for, so the fuzz reaches every branch.
reader_keys = st.sampled_from(["s", "n", "b", "x", "l", "o", "v", "q", "extra"]) | ascii_keys
odd_leaves: st.SearchStrategy[object] = st.one_of(
    json_scalars,
    st.text(alphabet=_B64_ALPHABET + "=", max_size=12),
    st.floats(allow_nan=True),
    st.binary(max_size=8),
    st.tuples(st.integers()),
    st.integers(),  # beyond the safe range too
)
odd_objects: st.SearchStrategy[object] = st.recursive(
    odd_leaves,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(reader_keys, kids, max_size=6),
    max_leaves=12,
)


def sample_reader(value: object) -> tuple[object, ...]:
    """A reader shaped like the wire types': every Fields method, then done()."""
    f = Fields(value, "sample")
    out = (
        f.str("s", max_len=8, pattern=re.compile(r"[a-z]*")),
        f.int("n", lo=-5, hi=5),
        f.bool("b"),
        f.bytes("x", max_len=4),
        str_list(f.list("l", max_items=3), "sample.l", pattern=re.compile(r".*", re.DOTALL)),
        as_object(f.obj("o"), "sample.o"),
        f.opt_str("q"),
    )
    f.literal("v", 1)
    f.done()
    return out


@given(odd_objects)
def test_fields_reader_raises_only_protocol_errors(value: object) -> None:
    try:
        sample_reader(value)
    except ProtocolError:
        pass


@given(
    st.fixed_dictionaries(
        {
            "s": st.text(alphabet="ab", max_size=9),
            "n": st.integers(-6, 6),
            "b": st.booleans(),
            "x": st.binary(max_size=5).map(b64e),
            "l": st.lists(st.text(max_size=2), max_size=4),
            "o": st.dictionaries(ascii_keys, json_scalars, max_size=2),
            "q": st.none() | st.text(max_size=3),
            "v": st.sampled_from([1, True, 2]),
        }
    ),
    st.data(),
)
def test_fields_reader_accepts_exactly_the_valid_objects(
    obj: dict[str, JSONValue], data: st.DataObject
) -> None:
    if data.draw(st.booleans()):
        obj = {**obj, data.draw(st.sampled_from(["extra", "S", ""])): 0}
    valid = (
        len(obj["s"]) <= 8
        and -5 <= obj["n"] <= 5
        and len(b64d(obj["x"])) <= 4
        and len(obj["l"]) <= 3
        and obj["v"] == 1
        and obj["v"] is not True
        and set(obj) == {"s", "n", "b", "x", "l", "o", "q", "v"}
    )
    assume(valid or data.draw(st.booleans()))
    try:
        sample_reader(parse(canonical(obj)))
    except ProtocolError:
        assert not valid
    else:
        assert valid


def test_another_version_is_unsupported_version_not_bad_value() -> None:
    """A v2 record is named as such, so a peer never guesses at its meaning."""
    from protocol.encoding import Fields
    from protocol.errors import BadValueError, UnsupportedVersionError

    with pytest.raises(UnsupportedVersionError) as info:
        Fields({"v": 2}, "record").version(1)
    assert info.value.code == "unsupported_version"
    with pytest.raises(BadValueError) as other:
        Fields({"v": "1"}, "record").version(1)
    assert other.value.code == "bad_value"
