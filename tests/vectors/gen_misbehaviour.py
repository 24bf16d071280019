"""Generate ``tests/vectors/misbehaviour.json``: known answers for misbehaviour bundles.

Run from the repository root::

    python -m tests.vectors.gen_misbehaviour          # rewrite the file
    python -m tests.vectors.gen_misbehaviour --check  # exit 1 if the file is stale

One small set of talks from the fixed seed ``vectors/misbehaviour`` (keys, nonces and
ephemeral keys from :func:`tests.helpers.make_rng`; time is a counter): ``na`` sends an
honest draft to the plenary, then two cheating ones (:mod:`tests.protocol.cheating`),
one wrapping another content key to ``sa`` (proven as ``decryption_failed``) and one whose
ciphertext decrypts to a text it did not commit to (``commitment_mismatch``).  The
victim ``sa`` signs ``rejected`` receipts and builds a bundle for each.

Also a sealed-box shared-key vector: a box made by libsodium's own ``crypto_box_easy``
around an ephemeral key, with ``crypto_box_beforenm(epk, secret)`` and the nonce.

Negative cases are named ``misbehaviour/<mutation>``; each is a patch, a list of
``[path, value]`` pairs that replace the subtree at ``path`` of the proven
``decryption_failed`` bundle's JSON, optionally verified against ``pinned`` instead of
the talks id.  Each gives the error ``code`` (``bad_evidence`` or ``not_misbehaviour``),
the ``step`` that fails and the ``cause`` (the underlying code) where there is one.

Bytes are unpadded base64url, as on the wire.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from protocol import crypto
from protocol.encoding import JSONValue, b64e, canonical, parse
from protocol.envelope import Payload
from protocol.errors import DecryptionError
from protocol.misbehaviour import MisbehaviourBundle, MisbehaviourReport, verify_misbehaviour
from protocol.receipt import REJECTED
from tests.helpers import make_rng
from tests.protocol.builders import Sent, Talks
from tests.protocol.cheating import bundle_for, commit_to_other_text, wrap_other_key
from tests.vectors.writer import write_or_check

OUTPUT = Path(__file__).with_name("misbehaviour.json")
SEED = "vectors/misbehaviour"

Case = dict[str, Any]


def scenario() -> tuple[Talks, Sent, Sent, Sent]:
    """The talks, the honest draft and the two cheating drafts."""
    t = Talks(SEED, quorum=3)
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.enrol("south", "sa")
    t.enrol_staff("sam", "observer")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    na, sa = t.people["na"].device, t.people["sa"].device
    honest = t.send(na, "plenary", "Article 1. A corridor opens at dawn.")
    t.receipt(sa, honest)
    wrong_key = wrap_other_key(t, na, "plenary", sa, "Article 2. Checkpoints at km 14.")
    t.receipt(sa, wrong_key, REJECTED, reason="decryption_failed")
    shown = Payload(title="Draft", body="Article 2. No checkpoints at all.").to_bytes()
    other_text = commit_to_other_text(t, na, "plenary", shown, "Article 2. Checkpoints.")
    t.receipt(sa, other_text, REJECTED, reason="commitment_mismatch")
    return t, honest, wrong_key, other_text


def bundle(t: Talks, sent: Sent) -> MisbehaviourBundle:
    """``sa``'s bundle for ``sent``."""
    return bundle_for(t, sent, t.people["sa"].device)


def _json(b: MisbehaviourBundle) -> JSONValue:
    return parse(b.to_bytes(), max_size=1 << 24)


def report(t: Talks, b: MisbehaviourBundle) -> Case:
    return report_json(verify_misbehaviour(b, t.talks_id))


def report_json(r: MisbehaviourReport) -> Case:
    """The facts of a report the vectors record."""
    return {
        "failure": r.failure,
        "index": r.index,
        "leaf": b64e(r.header.leaf),
        "channel": r.channel,
        "time": r.time,
        "sender_member": r.sender_member,
        "sender_device": b64e(r.sender_device),
        "recipient_member": r.recipient_member,
        "recipient_device": b64e(r.recipient_device),
        "checkpoint_size": r.checkpoint_size,
        "cosigners": list(r.cosigners),
        "talks_fingerprint": r.talks_fingerprint,
    }


def _shared_key() -> Case:
    rng = make_rng("vectors/misbehaviour/shared-key")
    recipient = crypto.BoxKey.generate(rng)
    content_key = rng(32)
    epk, esk = sodium.crypto_box_seed_keypair(rng(32))
    nonce = sodium.crypto_generichash_blake2b_salt_personal(
        epk + recipient.public_bytes(), digest_size=24
    )
    wrapped = epk + sodium.crypto_box_easy(content_key, nonce, recipient.public_bytes(), esk)
    return {
        "recipient_secret": b64e(recipient.secret_bytes()),
        "recipient_public": b64e(recipient.public_bytes()),
        "content_key": b64e(content_key),
        "wrapped": b64e(wrapped),
        "nonce": b64e(nonce),
        "shared_key": b64e(sodium.crypto_box_beforenm(epk, recipient.secret_bytes())),
    }


def _flip(text: str, at: int = 0) -> str:
    """A base64url text with the character at ``at`` changed (same length, decodable)."""
    return text[:at] + ("B" if text[at] == "A" else "A") + text[at + 1 :]


def _negative(t: Talks, honest: Sent, proven_bundle: MisbehaviourBundle) -> list[Case]:
    proven = _json(proven_bundle)
    assert isinstance(proven, dict)
    sa = t.people["sa"].device
    nh = t.people["nh"].device  # another recipient, whose box is honest
    sam = t.people["sam"].device  # staff, not in the plenary
    keys = proven["keys"]
    sa_id = b64e(sa.device_id)
    other_id = next(k for k in sorted(keys) if k != sa_id)
    # sa's true key for its box in the honest draft: everything checks, nothing is proven.
    honest_bundle = _json(
        dataclasses.replace(
            proven_bundle,
            draft=t.proven(honest.index, t.tree.size),
            keys=honest.sealed.keys,
            shared_key=crypto.sealed_box_shared_key(honest.sealed.keys[sa.device_id], sa.box),
            ciphertext=honest.sealed.ciphertext,
        )
    )
    body, _, sigs = proven["checkpoint"].partition("\n\n")
    sig_lines = sigs.splitlines()
    other_talks = b64e(crypto.sha256(b"other talks"))
    roster = proven["roster"]
    cases: list[tuple[str, list[list[Any]], str, str | None, str | None]] = [
        # name, patch, step, cause, pinned
        ("wrong-pinned-talks", [], "1", "wrong_talks", other_talks),
        ("genesis-not-at-zero", [[["genesis", "index"], 1]], "1", "bad_evidence", None),
        ("dropped-roster-change", [[["roster"], roster[:2] + roster[3:]]], "2", None, None),
        (
            "reordered-roster",
            [[["roster", 2], roster[3]], [["roster", 3], roster[2]]],
            "2",
            None,
            None,
        ),
        (
            "missing-quorum",
            [[["checkpoint"], "\n".join([body, "", *sig_lines[:2]]) + "\n"]],
            "3",
            "no_quorum",
            None,
        ),
        (
            "tampered-inclusion-proof",
            [[["draft", "proof", 0], _flip(proven["draft"]["proof"][0])]],
            "4",
            "bad_proof",
            None,
        ),
        (
            "altered-draft",
            [[["draft", "entry", "time"], proven["draft"]["entry"]["time"] + 1]],
            "4",
            "bad_proof",
            None,
        ),
        (
            "recipient-not-in-set",
            [
                [["recipient"], b64e(sam.device_id)],
                [["keys"], {**keys, b64e(sam.device_id): keys[sa_id]}],
            ],
            "6",
            "not_a_recipient",
            None,
        ),
        (
            "tampered-wrapped-map",
            [[["keys", other_id], _flip(keys[other_id], 40)]],
            "7",
            "ciphertext_mismatch",
            None,
        ),
        (
            "honest-box-swapped-in",
            [[["keys", sa_id], b64e(honest.sealed.keys[sa.device_id])]],
            "7",
            "ciphertext_mismatch",
            None,
        ),
        (
            "tampered-ciphertext",
            [[["ciphertext"], _flip(proven["ciphertext"], 40)]],
            "7",
            "ciphertext_mismatch",
            None,
        ),
        (
            "truncated-ciphertext",
            [[["ciphertext"], b64e(proven_bundle.ciphertext[:-1])]],
            "7",
            "ciphertext_mismatch",
            None,
        ),
        (
            "false-shared-key",
            [[["shared_key"], _flip(proven["shared_key"])]],
            "8",
            "decryption_failed",
            None,
        ),
        ("zero-shared-key", [[["shared_key"], b64e(bytes(32))]], "8", "decryption_failed", None),
        (
            "wrong-recipient",
            [[["recipient"], b64e(nh.device_id)]],
            "8",
            "decryption_failed",
            None,
        ),
        ("honest-sender", [[[], honest_bundle]], "9", None, None),
        (
            "unknown-field",
            [[["genesis"], {**proven["genesis"], "extra": 1}]],
            "0",
            "unknown_field",
            None,
        ),
        ("short-shared-key", [[["shared_key"], b64e(bytes(31))]], "0", "bad_value", None),
        ("recipient-without-box", [[["recipient"], b64e(bytes(16))]], "0", "bad_value", None),
    ]
    return [
        {
            "name": f"misbehaviour/{name}",
            "patch": patch,
            "step": step,
            "code": "not_misbehaviour" if name == "honest-sender" else "bad_evidence",
            **({"cause": cause} if cause else {}),
            **({"pinned": pinned} if pinned else {}),
        }
        for name, patch, step, cause, pinned in cases
    ]


def build() -> dict[str, Any]:
    t, honest, wrong_key, other_text = scenario()
    decryption = bundle(t, wrong_key)
    commitment = bundle(t, other_text)
    assert report(t, decryption)["failure"] == DecryptionError.code
    return {
        "about": (
            "Docket known-answer vectors for misbehaviour bundles (protocol/misbehaviour.py) "
            "and the sealed-box shared key (protocol/crypto.py). Generated by "
            "tests/vectors/gen_misbehaviour.py from the seed 'vectors/misbehaviour'; do not "
            "edit. Bytes are unpadded base64url. Negative cases are patches of the "
            "decryption_failed bundle, named misbehaviour/<mutation>."
        ),
        "seed": SEED,
        "talks_id": b64e(t.talks_id),
        "shared_key": _shared_key(),
        "proven": [
            {
                "name": "wrapped-other-key",
                "bundle": _json(decryption),
                "report": report(t, decryption),
            },
            {
                "name": "ciphertext-opens-to-other-text",
                "bundle": _json(commitment),
                "report": report(t, commitment),
            },
        ],
        "negative": _negative(t, honest, decryption),
    }


def render() -> str:
    """The exact text of ``misbehaviour.json``."""
    text = json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=True) + "\n"
    canonical(json.loads(text))  # only canonical-JSON values in the file
    return text


def main(argv: list[str]) -> int:
    return write_or_check(OUTPUT, render(), "tests.vectors.gen_misbehaviour", argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
