"""Wycheproof and CCTV curve vectors (see README.md here) and Docket's verdict on each.

Docket's rule, one for every verifier (protocol, server, client, auditor):

* an Ed25519 public key is accepted only as a canonical encoding of a point of prime
  order (:func:`protocol.crypto.check_signing_key`), so CCTV's ``low_order_A``,
  ``non_canonical_A`` and ``low_order_component_A`` keys are weak;
* a signature is accepted only by libsodium's strict, cofactorless check: CCTV's
  ``low_order_R``, ``non_canonical_R`` and ``low_order_residue`` are refused, as is
  every Wycheproof ``invalid`` vector, and every Wycheproof ``valid`` one verifies;
* an X25519 public key is weak when not canonical (``u >= p``, which includes a set high
  bit) or of small order (the shared secret would be zero).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
P25519 = 2**255 - 19
CCTV_REFUSED = frozenset(
    {
        "low_order_A",
        "non_canonical_A",
        "low_order_component_A",
        "low_order_R",
        "non_canonical_R",
        "low_order_residue",
    }
)
CCTV_WEAK_KEY = frozenset({"low_order_A", "non_canonical_A", "low_order_component_A"})


@dataclass(frozen=True, slots=True)
class EdCase:
    name: str
    public: bytes
    message: bytes
    signature: bytes
    accept: bool
    """Docket's verdict on the signature (with the key)."""
    weak_key: bool | None
    """Docket's verdict on the key alone, where the source says (``None``: not stated)."""


@dataclass(frozen=True, slots=True)
class XCase:
    name: str
    public: bytes
    private: bytes
    shared: bytes
    weak_key: bool


def _load(path: str) -> Any:
    return json.loads((HERE / path).read_text())


def ed25519_cases() -> list[EdCase]:
    out: list[EdCase] = []
    wycheproof = _load("wycheproof/ed25519_test.json")
    for group in wycheproof["testGroups"]:
        public = bytes.fromhex(group["publicKey"]["pk"])
        for t in group["tests"]:
            out.append(
                EdCase(
                    name=f"wycheproof-{t['tcId']}",
                    public=public,
                    message=bytes.fromhex(t["msg"]),
                    signature=bytes.fromhex(t["sig"]),
                    accept=t["result"] == "valid",
                    weak_key=None,
                )
            )
    for t in _load("cctv/ed25519vectors.json"):
        flags = set(t["flags"] or ())
        out.append(
            EdCase(
                name=f"cctv-{t['number']}",
                public=bytes.fromhex(t["key"]),
                message=t["msg"].encode(),
                signature=bytes.fromhex(t["sig"]),
                accept=not flags & CCTV_REFUSED,
                weak_key=bool(flags & CCTV_WEAK_KEY),
            )
        )
    return out


def x25519_cases() -> list[XCase]:
    out: list[XCase] = []
    for group in _load("wycheproof/x25519_test.json")["testGroups"]:
        for t in group["tests"]:
            public = bytes.fromhex(t["public"])
            shared = bytes.fromhex(t["shared"])
            out.append(
                XCase(
                    name=f"wycheproof-x25519-{t['tcId']}",
                    public=public,
                    private=bytes.fromhex(t["private"]),
                    shared=shared,
                    weak_key=int.from_bytes(public, "little") >= P25519 or shared == bytes(32),
                )
            )
    return out
