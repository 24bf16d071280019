"""Canonical JSON and strict base64url: the one encoding for everything hashed or signed.

Canonical form (a subset of RFC 8785, the JSON Canonicalization Scheme):

* objects with ASCII keys, sorted by code point, no duplicates;
* strings as UTF-8, escaping only ``"``, ``\\`` and control characters (``\\b \\f \\n \\r
  \\t`` short forms, others as ``\\u00xx``); lone surrogates are rejected;
* integers only, within +-(2**53 - 1); no floats, NaN or Infinity;
* ``true``, ``false``, ``null``; no insignificant whitespace.

For this subset RFC 8785's output equals ``json.dumps(..., sort_keys=True,
separators=(",", ":"), ensure_ascii=False)``, which a property test cross-checks against
the independent ``rfc8785`` package.

:func:`parse` is strict: the input must be exactly the canonical encoding of the value it
decodes to, so there is one byte string per value and a signature over re-encoded bytes
always covers what was received.  Bytes travel as unpadded base64url (:func:`b64d`
rejects padding, foreign characters and non-zero trailing bits).

Wire objects read their fields through :class:`Fields`, which rejects wrong types,
missing and unknown fields with :mod:`protocol.errors` exceptions.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from protocol.errors import (
    BadValueError,
    MalformedError,
    MissingFieldError,
    NonCanonicalError,
    TooDeepError,
    TooLargeError,
    UnknownFieldError,
    UnsupportedVersionError,
    WrongTypeError,
)

MAX_SAFE_INT = 2**53 - 1
DEFAULT_MAX_SIZE = 1 << 20
DEFAULT_MAX_DEPTH = 16

JSONValue = Any  # None | bool | int | str | list[JSONValue] | dict[str, JSONValue]

_B64_RE = re.compile(r"[A-Za-z0-9_-]*")
_B64_VALUE = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
_B64_STD = bytes.maketrans(b"-_", b"+/")
_B64_PAD = ("", "", "==", "=")


# --- base64url -----------------------------------------------------------------------


def b64e(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: object, *, length: int | None = None, what: str = "bytes") -> bytes:
    """Decode strict unpadded base64url; optionally require an exact decoded length."""
    if not isinstance(text, str):
        raise WrongTypeError(f"{what}: expected a base64url string")
    rem = len(text) % 4
    if not _B64_RE.fullmatch(text) or rem == 1:
        raise MalformedError(f"{what}: not unpadded base64url")
    # One encoding per byte string: the bits the last character of a partial group
    # carries beyond the data must be zero (re-encoding would yield another character).
    if rem and _B64_VALUE[text[-1]] & (0x0F if rem == 2 else 0x03):
        raise NonCanonicalError(f"{what}: non-zero trailing bits in base64url")
    try:
        raw = binascii.a2b_base64((text + _B64_PAD[rem]).encode("ascii").translate(_B64_STD))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex guards this
        raise MalformedError(f"{what}: not base64url") from exc
    if length is not None and len(raw) != length:
        raise BadValueError(f"{what}: expected {length} bytes, got {len(raw)}")
    return raw


# --- canonical JSON ------------------------------------------------------------------


def _check_value(value: JSONValue, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise TooDeepError(f"nesting deeper than {max_depth}")
    # Hot path (every hash, signature and parse walks a value): exact builtin types are
    # dispatched with ``type() is`` and the scalars inside containers are checked inline,
    # in the same order and with the same errors as the general rules below.
    kind = type(value)
    if kind is dict or kind is list:
        items = value.values() if kind is dict else value
        if kind is dict and not all(isinstance(k, str) and k.isascii() for k in value):
            _check_items_slowly(value, depth, max_depth)  # raises, in the general order
            return
        inner = depth + 1
        for item in items:
            t = type(item)
            if t is str or t is bool or item is None:
                if inner > max_depth:
                    raise TooDeepError(f"nesting deeper than {max_depth}")
            elif t is int:
                if inner > max_depth:
                    raise TooDeepError(f"nesting deeper than {max_depth}")
                if not -MAX_SAFE_INT <= item <= MAX_SAFE_INT:
                    raise BadValueError("integer outside +-(2**53-1)")
            else:
                _check_value(item, inner, max_depth)
        return
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise BadValueError("integer outside +-(2**53-1)")
        return
    if isinstance(value, str):
        return
    if isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1, max_depth)
        return
    if isinstance(value, dict):
        _check_items_slowly(value, depth, max_depth)
        return
    raise WrongTypeError(f"cannot encode {type(value).__name__} canonically")


def _check_items_slowly(value: dict[Any, JSONValue], depth: int, max_depth: int) -> None:
    for key, item in value.items():
        if not isinstance(key, str) or not key.isascii():
            raise MalformedError("object keys must be ASCII strings")
        _check_value(item, depth + 1, max_depth)


def canonical(value: JSONValue, *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """Return the canonical JSON encoding of ``value`` (the only form ever hashed/signed)."""
    _check_value(value, 0, max_depth)
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedError("lone surrogate in string") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise MalformedError("value cannot be encoded") from exc


def _reject_constant(name: str) -> NoReturn:
    raise MalformedError(f"{name} is not allowed")


def _reject_float(text: str) -> NoReturn:
    raise MalformedError("floats are not allowed")


def _parse_int(text: str) -> int:
    # int() raises ValueError past 4300 digits (CPython's int_max_str_digits); anything
    # longer than 16 digits is outside +-(2**53-1) anyway, so refuse it before int() runs.
    if len(text.lstrip("-")) > 16:
        raise BadValueError("integer outside +-(2**53-1)")
    return int(text)


def _pairs(pairs: list[tuple[str, JSONValue]]) -> dict[str, JSONValue]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


# Built once: json.dumps/json.loads with options construct a new coder on every call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_float=_reject_float,
    parse_int=_parse_int,
    parse_constant=_reject_constant,
)


def parse(
    data: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> JSONValue:
    """Parse canonical JSON strictly.  Anything else raises a :class:`ProtocolError`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WrongTypeError("expected bytes")
    raw = bytes(data)
    if len(raw) > max_size:
        raise TooLargeError(f"input larger than {max_size} bytes")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedError("input is not UTF-8") from exc
    try:
        if text.startswith("\ufeff"):  # as json.loads, which _DECODER.decode skips
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedError(f"invalid JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise TooDeepError("nesting too deep") from exc
    if canonical(value, max_depth=max_depth) != raw:
        raise NonCanonicalError("input is not in canonical JSON form")
    return value


# --- typed field access --------------------------------------------------------------


class Fields:
    """Read typed fields out of a parsed JSON object, rejecting anything unexpected.

    Usage::

        f = Fields(obj, "receipt")
        kind = f.str("kind")
        ...
        f.done()   # raises UnknownFieldError if any field was not read
    """

    # The readers are named after builtins, so inside this class body ``str``, ``int``,
    # ``bool``, ``bytes`` and ``list`` mean the methods; annotations spell the builtin
    # types as ``builtins.*`` (method bodies still see the builtins).

    __slots__ = ("_obj", "_seen", "_what")

    def __init__(self, obj: object, what: str) -> None:
        if not isinstance(obj, dict):
            raise WrongTypeError(f"{what}: expected an object")
        self._obj: dict[str, JSONValue] = obj
        self._what = what
        self._seen: set[str] = set()

    def _get(self, key: str) -> JSONValue:
        self._seen.add(key)
        if key not in self._obj:
            raise MissingFieldError(f"{self._what}: missing field {key!r}")
        return self._obj[key]

    def has(self, key: str) -> bool:
        return key in self._obj

    def raw(self, key: str) -> JSONValue:
        return self._get(key)

    def str(
        self, key: str, *, max_len: int = 256, pattern: re.Pattern[str] | None = None
    ) -> builtins.str:
        value = self._get(key)
        if not isinstance(value, str):
            raise WrongTypeError(f"{self._what}.{key}: expected a string")
        if len(value) > max_len:
            raise BadValueError(f"{self._what}.{key}: longer than {max_len}")
        if pattern is not None and not pattern.fullmatch(value):
            raise BadValueError(f"{self._what}.{key}: invalid value")
        return value

    def opt_str(self, key: builtins.str, *, max_len: builtins.int = 256) -> builtins.str | None:
        if self._obj.get(key, None) is None:
            self._seen.add(key)
            if key not in self._obj:
                raise MissingFieldError(f"{self._what}: missing field {key!r}")
            return None
        return self.str(key, max_len=max_len)

    def int(
        self, key: builtins.str, *, lo: builtins.int = 0, hi: builtins.int = MAX_SAFE_INT
    ) -> builtins.int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise WrongTypeError(f"{self._what}.{key}: expected an integer")
        if not lo <= value <= hi:
            raise BadValueError(f"{self._what}.{key}: out of range")
        return value

    def bool(self, key: builtins.str) -> builtins.bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise WrongTypeError(f"{self._what}.{key}: expected a boolean")
        return value

    def bytes(
        self,
        key: builtins.str,
        *,
        length: builtins.int | None = None,
        max_len: builtins.int | None = None,
    ) -> builtins.bytes:
        raw = b64d(self._get(key), length=length, what=f"{self._what}.{key}")
        if max_len is not None and len(raw) > max_len:
            raise BadValueError(f"{self._what}.{key}: longer than {max_len} bytes")
        return raw

    def list(
        self, key: builtins.str, *, max_items: builtins.int = 1024
    ) -> builtins.list[JSONValue]:
        value = self._get(key)
        if not isinstance(value, list):
            raise WrongTypeError(f"{self._what}.{key}: expected a list")
        if len(value) > max_items:
            raise BadValueError(f"{self._what}.{key}: more than {max_items} items")
        return value

    def obj(self, key: builtins.str) -> dict[builtins.str, JSONValue]:
        value = self._get(key)
        if not isinstance(value, dict):
            raise WrongTypeError(f"{self._what}.{key}: expected an object")
        return value

    def literal(self, key: builtins.str, expected: JSONValue) -> None:
        value = self._get(key)
        if value != expected or type(value) is not type(expected):
            raise BadValueError(f"{self._what}.{key}: expected {expected!r}")

    def version(self, expected: builtins.int) -> None:
        """The ``v`` field: exactly ``expected``; another integer is
        :class:`UnsupportedVersionError` (a peer must never guess at another version's
        meaning), anything else :class:`BadValueError`."""
        value = self._get("v")
        if type(value) is builtins.int and value != expected:
            raise UnsupportedVersionError(f"{self._what}: version {value} is not supported")
        self.literal("v", expected)

    def done(self) -> None:
        extra = set(self._obj) - self._seen
        if extra:
            raise UnknownFieldError(f"{self._what}: unknown field {sorted(extra)[0]!r}")


def str_list(values: Iterable[JSONValue], what: str, *, pattern: re.Pattern[str]) -> list[str]:
    """Validate a list of strings matching ``pattern``; returns it as ``list[str]``."""
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise BadValueError(f"{what}: invalid item")
        out.append(value)
    return out


def bytes_list(values: Iterable[JSONValue], what: str, *, length: int) -> list[bytes]:
    return [b64d(v, length=length, what=what) for v in values]


def strictly_sorted(items: list[Any], what: str) -> None:
    """Require a list to be sorted with no duplicates (one encoding per set)."""
    for a, b in itertools.pairwise(items):
        if not a < b:
            raise NonCanonicalError(f"{what}: must be sorted without duplicates")


def as_object(value: JSONValue, what: str) -> Mapping[str, JSONValue]:
    if not isinstance(value, dict):
        raise WrongTypeError(f"{what}: expected an object")
    return value
