"""Protocol speed: seal/open of a 13-recipient draft, proof verification, raw Ed25519.

Every figure is a median over repeated rounds, measured in the same run as the raw
Ed25519 verify baseline so ratios are meaningful on any machine.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from protocol import crypto, merkle
from protocol.envelope import Payload, open_draft, seal
from protocol.keys import DeviceKeys
from protocol.merkle import LeafHash, MemoryTree
from protocol.records import DraftId, MessageId, TalksId


def _rate(fn: Callable[[], object], n: int, rounds: int) -> float:
    """Median operations per second over ``rounds`` rounds of ``n`` calls."""
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def run(*, smoke: bool = False) -> dict[str, float]:
    """Measure and return the protocol figures (ops/s)."""
    n = 20 if smoke else 400
    rounds = 1 if smoke else 5
    rng = os.urandom
    sender = DeviceKeys.generate(rng)
    devices = [sender] + [DeviceKeys.generate(rng) for _ in range(12)]
    recipients = {d.device_id: d.public for d in devices}
    talks = TalksId(rng(32))
    body = "x" * 2048
    payload = Payload(title="Front-line deconfliction", body=body)

    def do_seal() -> object:
        return seal(
            sender=sender,
            talks=talks,
            channel="wg-military",
            counter=1,
            msg=MessageId(rng(16)),
            draft=DraftId(rng(16)),
            version=1,
            parents=(),
            roster=LeafHash(bytes(32)),
            recipients=recipients,
            payload=payload,
            time=0,
            rng=rng,
        )

    sealed = seal(
        sender=sender,
        talks=talks,
        channel="wg-military",
        counter=1,
        msg=MessageId(rng(16)),
        draft=DraftId(rng(16)),
        version=1,
        parents=(),
        roster=LeafHash(bytes(32)),
        recipients=recipients,
        payload=payload,
        time=0,
        rng=rng,
    )
    reader = devices[5]

    def do_open() -> object:
        return open_draft(
            sealed.header,
            sealed.keys,
            sealed.ciphertext,
            me=reader,
            talks=talks,
            sender=sender.public,
            recipients=recipients,
        )

    key = crypto.SigningKey.generate(rng)
    message = b"m" * 600
    signature = key.sign(crypto.CTX_DRAFT, message)
    public = key.public_bytes()

    def do_verify() -> None:
        crypto.verify(public, crypto.CTX_DRAFT, message, signature)

    size = 1 << (10 if smoke else 16)
    tree = MemoryTree()
    for i in range(size):
        tree.append(b"entry-%d" % i)
    root = tree.root()
    index = size // 3
    proof = tree.inclusion_proof(index)
    leaf = tree.leaf(index)

    def do_proof() -> None:
        merkle.verify_inclusion(leaf, index, size, proof, root)

    return {
        "ed25519_verify_per_s": _rate(do_verify, n * 5, rounds),
        "seal_13_recipients_per_s": _rate(do_seal, n, rounds),
        "open_13_recipients_per_s": _rate(do_open, n, rounds),
        "inclusion_proof_verify_per_s": _rate(do_proof, n * 5, rounds),
        "tree_size": float(size),
    }
