"""Misbehaviour bundles end to end: a participant that equivocates is proven to have done
so by its victim's bundle, verified offline; a bundle against an honest sender fails.

Everything runs through the real library and CLI against a real server on loopback
(the talks of :mod:`tests.client.test_e2e`, on a server of this module's own).  The one
hostile act, the cheating sender's upload, is built by wrapping the real ``seal``: the
sender's client does everything else (sync, counters, upload, waiting for the entry).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import client.drafts
from client.api import DocketClient
from client.errors import UsageError, VerificationError
from protocol import crypto
from protocol.encoding import b64d, b64e
from protocol.envelope import DraftHeader, Payload, SealedDraft, keys_hash, seal
from protocol.evidence import EvidenceBundle
from protocol.keys import DeviceId
from protocol.misbehaviour import MisbehaviourBundle
from protocol.records import sign_record
from tests.client.conftest import PASSPHRASE
from tests.client.test_e2e import Talks, cli, ok, talks

__all__ = ["talks"]  # the fixture: this module's own talks, on a server of its own

VICTIM = "sh"


def device_of(home: Path) -> DeviceId:
    """The device id of the home's device (from ``whoami``)."""
    return DeviceId(b64d(ok(cli(home, "whoami"))["device"]))


def wrapping_another_key_for(victim: DeviceId) -> Callable[..., SealedDraft]:
    """``seal`` as a cheating sender runs it: the honest draft, except that the box for
    ``victim`` holds a fresh content key, and the header is signed over that key map.
    Every other recipient reads the committed text; the victim's decryption fails."""

    def cheat(**kwargs: Any) -> SealedDraft:
        honest = seal(**kwargs)
        rng = kwargs["rng"]
        keys = dict(honest.keys)
        target = kwargs["recipients"][victim]
        keys[victim] = crypto.wrap_key(crypto.new_content_key(rng), target.enc_pk, rng)
        obj = honest.header.to_json()
        obj["wrapped"] = b64e(keys_hash(keys))
        header = DraftHeader.from_json(sign_record(kwargs["sender"].signing, crypto.CTX_DRAFT, obj))
        return SealedDraft(
            header=header,
            keys=keys,
            ciphertext=honest.ciphertext,
            content_key=honest.content_key,
        )

    return cheat


def send_equivocating(talks: Talks, monkeypatch: pytest.MonkeyPatch, text: str) -> int:
    """``na`` sends ``text`` to the plenary with another key wrapped for the victim."""
    victim = device_of(talks.home(VICTIM))

    async def go() -> int:
        async with DocketClient(talks.home("na"), passphrase=PASSPHRASE) as sender:
            with monkeypatch.context() as m:
                m.setattr(client.drafts, "seal", wrapping_another_key_for(victim))
                sent = await sender.send("plenary", Payload(title=text, body=text))
            return sent.index

    return asyncio.run(go())


def test_equivocating_sender_is_proven_by_a_bundle_that_verifies_offline(
    talks: Talks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    index = send_equivocating(talks, monkeypatch, "Art. 4. The bridge reopens.")

    # The victim's inbox rejects it, for a reason only the sender can cause.
    inbox = cli(talks.home(VICTIM), "inbox")
    assert inbox.code == 1, inbox.err
    rejected = {r["index"]: r for r in inbox.data["rejected"]}
    assert rejected[index]["code"] == "decryption_failed"
    assert rejected[index]["sender"] == "na"
    assert index not in [i["index"] for i in inbox.data["items"]]
    # Every other recipient reads the committed text.
    other = ok(cli(talks.home("sa"), "inbox"))
    assert next(i for i in other["items"] if i["index"] == index)["sender"] == "na"
    ok(cli(talks.home("med"), "inbox"))
    talks.witness_all()

    # The auditor names the sender (the rejected receipt is the claim).
    audit = cli(talks.home("obs"), "audit")
    assert audit.code == 1
    found = [a for a in audit.data["alarms"] if a["code"] == "equivocation"]
    assert [a["index"] for a in found] == [index]
    assert "draft by na" in found[0]["reason"] and "sh (decryption_failed)" in found[0]["reason"]

    # The victim turns the claim into a proof anyone can check without a server.
    path = tmp_path / "misbehaviour.json"
    wrote = ok(cli(talks.home(VICTIM), "disclose", str(index), "--misbehaviour", "--out",
                   str(path)))  # fmt: skip
    assert wrote["t"] == "misbehaviour" and wrote["failure"] == "decryption_failed"
    assert (wrote["sender"], wrote["recipient"], wrote["index"]) == ("na", VICTIM, index)
    assert path.stat().st_mode & 0o077 == 0
    data = path.read_bytes()
    assert json.loads(data)["t"] == "misbehaviour"
    assert b"The bridge reopens" not in data  # no plaintext is disclosed

    human = cli(None, "verify-evidence", str(path), "--talks", talks.fingerprint, as_json=False)
    assert human.code == 0, human.err
    assert human.out.splitlines()[0] == (
        f"PROVEN: sender na signed draft at index {index}; the key wrapped for {VICTIM} "
        "does not open to the committed text (decryption_failed)"
    )
    report = ok(cli(None, "verify-evidence", str(path), "--talks", talks.talks))
    assert report["proven"] is True and report["t"] == "misbehaviour"
    assert (report["sender"], report["recipient"], report["index"]) == ("na", VICTIM, index)
    assert len(report["cosigners"]) == 3

    # Any changed byte and the proof is gone.
    for offset in range(0, len(data), max(1, len(data) // 40)):
        changed = bytearray(data)
        changed[offset] ^= 0x01
        path.write_bytes(bytes(changed))
        assert cli(None, "verify-evidence", str(path), "--talks", talks.talks).code == 1


def test_forged_misbehaviour_proof_against_honest_sender_fails(
    talks: Talks, tmp_path: Path
) -> None:
    sent = ok(cli(talks.home("na"), "send", "plenary", "--text", "Art. 5. Honest text."))
    index = sent["index"]
    ok(cli(talks.home(VICTIM), "inbox"))
    talks.witness_all()

    # The victim's own client refuses to build a bundle for a draft that opened.
    out = tmp_path / "forged.json"
    refused = cli(talks.home(VICTIM), "disclose", str(index), "--misbehaviour", "--out", str(out))
    assert refused.code == 1 and refused.data["error"]["code"] == "not_misbehaviour"
    assert refused.err.count("\n") == 1 and not out.exists()
    # ... or for a draft that was never addressed to it.
    wg = ok(cli(talks.home("na"), "send", "wg", "--text", "Only for the group."))
    elsewhere = cli(talks.home(VICTIM), "disclose", str(wg["index"]), "--misbehaviour",
                    "--out", str(out))  # fmt: skip
    assert elsewhere.code == 2 and elsewhere.data["error"]["code"] == "not_a_recipient"

    # A bundle built by hand from the very bytes received: with a made-up box key the box
    # does not open (it proves nothing); with the true one it opens to the committed text.
    async def received() -> tuple[EvidenceBundle, dict[DeviceId, bytes], DeviceId, bytes]:
        async with DocketClient(talks.home(VICTIM), passphrase=PASSPHRASE) as victim:
            evidence = await victim.disclose(index)
            record = victim.state.draft_record(index)
            assert record is not None and record.keys is not None
            keys = {DeviceId(b64d(k)): b64d(v) for k, v in record.keys.items()}
            true_key = crypto.sealed_box_shared_key(keys[victim.device_id], victim.keys.box)
            return evidence, keys, victim.device_id, true_key

    evidence, keys, me, true_key = asyncio.run(received())
    for shared_key, code in ((b"\x01" * 32, "bad_evidence"), (true_key, "not_misbehaviour")):
        forged = MisbehaviourBundle(
            genesis=evidence.genesis,
            roster=evidence.roster,
            draft=evidence.draft,
            checkpoint=evidence.checkpoint,
            recipient=me,
            keys=keys,
            shared_key=shared_key,
            ciphertext=evidence.ciphertext,
        )
        out.write_bytes(forged.to_bytes())
        for pin in (talks.fingerprint, talks.talks):
            result = cli(None, "verify-evidence", str(out), "--talks", pin)
            assert result.code == 1, result.err
            assert result.data["error"]["code"] == code
            assert result.err.count("\n") == 1 and result.err.startswith("docket: ")


def test_draft_the_server_altered_proves_nothing_against_its_sender(talks: Talks) -> None:
    """A ciphertext changed in transit is rejected (``ciphertext_mismatch``), but the
    server or the network may have done it: no misbehaviour bundle is offered."""
    sent = ok(cli(talks.home("na"), "send", "plenary", "--text", "Art. 6. Altered."))
    index = sent["index"]

    async def scenario() -> None:
        async with DocketClient(talks.home("nb"), passphrase=PASSPHRASE) as victim:
            real = victim._fetch_draft

            async def tampered(i: int) -> Any:
                keys, ciphertext = await real(i)
                if i == index:
                    ciphertext = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
                return keys, ciphertext

            victim._fetch_draft = tampered  # type: ignore[method-assign,assignment]
            result = await victim.inbox()
            assert [(r.index, r.code) for r in result.rejected] == [(index, "ciphertext_mismatch")]
            with pytest.raises(VerificationError) as info:
                await victim.disclose_misbehaviour(index)
            assert info.value.code == "not_misbehaviour"
            assert "ciphertext_mismatch" in info.value.message
            with pytest.raises(UsageError) as not_a_draft:
                await victim.disclose_misbehaviour(0)
            assert "not a draft" in not_a_draft.value.message

    asyncio.run(scenario())
