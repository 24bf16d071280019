"""What a malicious server (or a colluding participant) can make: entries re-signed with the
wrong key, mutated fields, replayed or reordered entries, fabricated promises.

Everything here works on the raw canonical bytes a server stores and serves, so a test
can splice the result into a :class:`~tests.adversarial.proxy.LogView`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, cast

from protocol import crypto
from protocol.encoding import JSONValue, b64d, b64e, canonical, parse
from protocol.genesis import Genesis
from protocol.keys import DeviceKeys
from protocol.ledger import Ledger
from protocol.receipt import Promise, make_promise
from protocol.records import sign_record


def obj(entry: bytes) -> dict[str, Any]:
    """A log entry as a mutable JSON object."""
    return cast(dict[str, Any], parse(entry))


def enc(value: dict[str, Any]) -> bytes:
    """Canonical bytes of a (mutated) entry."""
    return canonical(cast(JSONValue, value))


def flip(value: str) -> str:
    """A base64url value with its first bit flipped (same length, still canonical)."""
    raw = bytearray(b64d(value))
    raw[0] ^= 0x01
    return b64e(bytes(raw))


def resign(entry: bytes, key: crypto.SigningKey, context: bytes) -> bytes:
    """``entry`` with its ``sig`` replaced by ``key``'s signature over it (under
    ``context``): a well-formed record whose signature is by the wrong key."""
    return canonical(sign_record(key, context, obj(entry)))


def random_keys() -> DeviceKeys:
    """A device nobody enrolled (the attacker's)."""
    return DeviceKeys.generate(os.urandom)


def ledger_over(entries: Sequence[bytes]) -> Ledger:
    """The ledger after ``entries`` (which must all be valid)."""
    ledger = Ledger(Genesis.from_bytes(entries[0]))
    for entry in entries[1:]:
        ledger.apply(entry)
    return ledger


def promise(
    key: crypto.SigningKey, origin: str, index: int, leaf: bytes, *, at: int | None = None
) -> Promise:
    """A promise signed with the server's log key, saying whatever the server likes."""
    when = int(time.time() * 1000) if at is None else at
    return make_promise(key=key, origin=origin, index=index, leaf=leaf, time=when)
