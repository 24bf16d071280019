"""Step 2, signatures: parse a chunk of the log once (main process) and verify its
signatures and Merkle leaves (in a worker process, or in-process).

The main process parses each chunk strictly, once (drafts and receipts through
:func:`protocol.hotparse.parse_hot`, which yields exactly what the general parser would
or defers to it), and learns device keys from the roster changes it meets, valid or not
(device id -> Ed25519 key).  A device id is a SHA-256 commitment to both public keys, so
an id can only ever name that one key; the map decides nothing, it only lets workers
verify early.

A worker receives the chunk's raw bytes (or only where the chunk starts in a log it
inherited, see :mod:`client.auditor.pipeline`) and, for every draft and receipt whose
device is in the map, its position, that key, the signature and, when the fast parser
matched the record, where the ``sig`` member sits in the bytes (so the signed bytes are
cut out by position, not searched for); it checks the signatures, hashes the leaves and
returns the positions that verified, the chunk's Merkle subtree root and the partial
roots at any checkpoint size inside it (a compact answer: positions and hashes, never
objects).  Verification here only saves the ledger work: the replay
(:mod:`client.auditor.replay`) still decides every entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from protocol import crypto, merkle
from protocol.crypto import CTX_DRAFT, CTX_RECEIPT
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.hotparse import SIG_MEMBER_HEAD, SIG_MEMBER_TAIL, parse_hot_signed
from protocol.keys import DeviceId
from protocol.ledger import Entry, parse_entry, raw_signature_verifies, signature_claim
from protocol.receipt import Receipt
from protocol.roster import RosterChange

# One entry as parsed: the entry or, if its bytes do not parse, (code, detail).
_Parsed = Entry | tuple[str, str]
# A signature to check: (position in the chunk, public key, context, signature, offset
# of the signature's text in the entry's bytes, or 0 if the fast parser did not say).
_Check = tuple[int, bytes, bytes, bytes, int]


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a worker returns for one chunk."""

    positions: frozenset[int]
    """Positions whose signature verified under the key sent with them."""
    roots: dict[int, bytes]
    """Chunk-relative width -> Merkle root of the chunk's first ``width`` leaves (always
    including the chunk's whole length)."""


def _parse_chunk(
    entries: list[bytes], keys: dict[DeviceId, bytes]
) -> tuple[list[_Parsed], list[_Check]]:
    """Parse a chunk strictly (main process) and list the signatures workers can check.

    Keys enrolled by any roster change that parses, even one the ledger will refuse, are
    added to ``keys`` as they are met, so an entry can be pre-verified whenever its
    device appeared earlier in the log.  That decides nothing: the ledger still requires
    the roster's key for the device at that index, and a device id commits to its keys.
    """
    parsed: list[_Parsed] = []
    checks: list[_Check] = []
    add, check, key_of, hot_signed = parsed.append, checks.append, keys.get, parse_hot_signed
    for position, raw in enumerate(entries):
        # The hot records through the fast parser, which returns exactly what
        # parse_entry would (and where the signature sits), or None when unsure: then
        # parse_entry decides.
        hot = hot_signed(raw)
        if hot is not None:
            record, offset = hot
            add(record)
            if isinstance(record, Receipt):
                key = key_of(record.device)
                context = CTX_RECEIPT
            else:
                key = key_of(record.sender)
                context = CTX_DRAFT
            if key is not None:
                check((position, key, context, record.sig, offset))
            continue
        try:
            entry = parse_entry(raw)
        except ProtocolError as exc:
            add((exc.code, exc.detail))
            continue
        add(entry)
        claim = signature_claim(entry)
        if claim is not None:
            key = keys.get(claim[0])
            if key is not None:
                checks.append((position, key, claim[1], entry.sig, 0))
        elif isinstance(entry, RosterChange):
            for device in entry.args.devices:
                keys[device.device_id] = device.sign_pk
        elif isinstance(entry, Genesis):
            keys[entry.mediator_device.device_id] = entry.mediator_device.sign_pk
    return parsed, checks


def _cut_verifies(key: bytes, context: bytes, raw: bytes, sig: bytes, offset: int) -> bool:
    """:func:`~protocol.ledger.raw_signature_verifies` where the fast parser has located
    the ``sig`` member (:func:`protocol.hotparse.parse_hot_signed`): the signed bytes are
    ``raw`` without it, cut out by position rather than found by searching."""
    message = raw[: offset - SIG_MEMBER_HEAD] + raw[offset + SIG_MEMBER_TAIL :]
    try:
        crypto.verify(key, context, message, sig)
    except ProtocolError:
        return False
    return True


def _verify_chunk(
    entries: Sequence[bytes], checks: list[_Check], cuts: tuple[int, ...]
) -> _Verified:
    """Check signatures and hash leaves for one chunk (in a worker, or in-process)."""
    positions = frozenset(
        position
        for position, key, context, sig, offset in checks
        if (
            _cut_verifies(key, context, entries[position], sig, offset)
            if offset
            else raw_signature_verifies(key, context, entries[position], sig)
        )
    )
    if not cuts and len(entries) & (len(entries) - 1) == 0:
        # A full chunk without checkpoint inside (nearly all): a perfect subtree,
        # hashed level by level, without the frontier's bookkeeping per leaf, and with
        # RFC 9162's leaf and node hashes (merkle.leaf_hash, merkle.node_hash) inline.
        sha256 = hashlib.sha256
        level = [sha256(b"\x00" + raw).digest() for raw in entries]
        while len(level) > 1:
            level = [
                sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)
            ]
        return _Verified(positions=positions, roots={len(entries): level[0]})
    leaves = [merkle.leaf_hash(raw) for raw in entries]
    frontier = merkle.Frontier()
    wanted = set(cuts)
    roots: dict[int, bytes] = {}
    for leaf in leaves:
        frontier.append(leaf)
        if frontier.size in wanted:
            roots[frontier.size] = frontier.root()
    roots[frontier.size] = frontier.root()
    return _Verified(positions=positions, roots=roots)
