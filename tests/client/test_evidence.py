"""Evidence verification from the client side: pinning by id or fingerprint, a bundle
with any byte changed never verifies, and a misbehaviour bundle is told apart by its
``t`` and proves a cheating sender only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.api import bundle_kind, verify_evidence_bytes, verify_misbehaviour_bytes
from client.cli import run
from client.errors import UsageError, VerificationError
from protocol import crypto
from protocol.encoding import b64e
from protocol.keys import DeviceKeys
from tests.protocol.builders import Sent, Talks, standard
from tests.protocol.cheating import bundle_for, wrap_other_key


@pytest.fixture(scope="module")
def bundle() -> tuple[bytes, Talks]:
    talks, sent, receipts = standard("client-evidence")
    return talks.evidence(sent, receipts).to_bytes(), talks


def test_verifies_with_talks_id_and_fingerprint(bundle: tuple[bytes, Talks]) -> None:
    data, talks = bundle
    report = verify_evidence_bytes(data, b64e(talks.talks_id))
    assert report.sender_member == "na"
    assert report.payload.body == "Article 1. The parties agree to talk."
    assert {f.member for f in report.receipts} >= {"nb", "sh", "sa", "med"}
    again = verify_evidence_bytes(data, talks.genesis.fingerprint)
    assert again.index == report.index
    # Fingerprints are compared by their digits: spacing does not matter.
    compact = talks.genesis.fingerprint.replace(" ", "")
    assert verify_evidence_bytes(data, compact).index == report.index


def test_other_talks_are_refused(bundle: tuple[bytes, Talks]) -> None:
    data, _ = bundle
    other, _, _ = standard("other talks")
    with pytest.raises(VerificationError):
        verify_evidence_bytes(data, b64e(other.talks_id))
    with pytest.raises(VerificationError, match="fingerprint"):
        verify_evidence_bytes(data, other.genesis.fingerprint)
    with pytest.raises(UsageError):
        verify_evidence_bytes(data, "not a talks id")


def _offsets(n: int) -> list[int]:
    """Every byte near both ends plus ~300 spread over the middle."""
    step = max(1, n // 300)
    return sorted({*range(min(n, 64)), *range(max(0, n - 64), n), *range(0, n, step)})


def test_any_changed_byte_fails(bundle: tuple[bytes, Talks]) -> None:
    data, talks = bundle
    talks_id = b64e(talks.talks_id)
    offsets = _offsets(len(data))
    assert len(offsets) > 300
    for offset in offsets:
        for flip in (0x01, 0x20):
            changed = bytearray(data)
            changed[offset] ^= flip
            with pytest.raises(VerificationError):
                verify_evidence_bytes(bytes(changed), talks_id)


def test_cli_verify_evidence(
    bundle: tuple[bytes, Talks], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, talks = bundle
    path = tmp_path / "evidence.json"
    path.write_bytes(data)
    assert run(["verify-evidence", str(path), "--talks", talks.genesis.fingerprint]) == 0
    out = capsys.readouterr().out
    assert "VERIFIED" in out and "sent by na" in out

    assert run(["--json", "verify-evidence", str(path), "--talks", b64e(talks.talks_id)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True and report["sender"] == "na"

    changed = bytearray(data)
    changed[len(data) // 2] ^= 1
    path.write_bytes(bytes(changed))
    assert run(["verify-evidence", str(path), "--talks", talks.genesis.fingerprint]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("docket: ")

    assert run(["verify-evidence", str(tmp_path / "missing"), "--talks", "x"]) == 2


def true_key(sent: Sent, me: DeviceKeys) -> bytes:
    """The key of ``me``'s box in ``sent``: what an honest recipient would disclose."""
    return crypto.sealed_box_shared_key(sent.sealed.keys[me.device_id], me.box)


@pytest.fixture(scope="module")
def misbehaviour() -> tuple[bytes, Talks]:
    """``na`` wraps another key for ``sa``; ``sa``'s bundle proves it."""
    talks, _, _ = standard("client-misbehaviour")
    na, sa = talks.people["na"].device, talks.people["sa"].device
    cheat = wrap_other_key(talks, na, "plenary", sa, "Art. 3")
    return bundle_for(talks, cheat, sa).to_bytes(), talks


def test_misbehaviour_bundle_verifies_with_talks_id_and_fingerprint(
    misbehaviour: tuple[bytes, Talks],
) -> None:
    data, talks = misbehaviour
    assert bundle_kind(data) == "misbehaviour"
    report = verify_misbehaviour_bytes(data, b64e(talks.talks_id))
    assert (report.sender_member, report.recipient_member) == ("na", "sa")
    assert report.failure == "decryption_failed"
    assert verify_misbehaviour_bytes(data, talks.genesis.fingerprint).index == report.index
    other, _, _ = standard("other talks")
    with pytest.raises(VerificationError) as info:
        verify_misbehaviour_bytes(data, other.genesis.fingerprint)
    assert info.value.code == "wrong_talks"
    with pytest.raises(VerificationError) as info:
        verify_misbehaviour_bytes(data[:-2], talks.genesis.fingerprint)
    assert info.value.code == "bad_evidence"


def test_misbehaviour_against_an_honest_sender_is_not_proven() -> None:
    talks, honest, _ = standard("client-misbehaviour-honest")
    sh = talks.people["sh"].device
    forged = bundle_for(talks, honest, sh, shared_key=true_key(honest, sh)).to_bytes()
    with pytest.raises(VerificationError) as info:
        verify_misbehaviour_bytes(forged, b64e(talks.talks_id))
    assert info.value.code == "not_misbehaviour"


def test_cli_verify_evidence_recognises_a_misbehaviour_bundle(
    misbehaviour: tuple[bytes, Talks], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, talks = misbehaviour
    path = tmp_path / "misbehaviour.json"
    path.write_bytes(data)
    assert run(["verify-evidence", str(path), "--talks", talks.genesis.fingerprint]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("PROVEN: sender na signed draft at index ")
    assert first.endswith(
        "; the key wrapped for sa does not open to the committed text (decryption_failed)"
    )
    assert run(["--json", "verify-evidence", str(path), "--talks", b64e(talks.talks_id)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["proven"] is True and report["t"] == "misbehaviour"
    assert report["recipient_device"] == b64e(talks.people["sa"].device.device_id)
