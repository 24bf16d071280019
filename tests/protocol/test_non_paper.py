"""Non-papers: a draft its recipients can verify came from its sender, which nobody can
prove to a third party (protocol.envelope.seal(non_paper=True), PROTOCOL.md §6)."""

from __future__ import annotations

import pytest

from protocol import crypto
from protocol.encoding import b64e, canonical, parse
from protocol.envelope import (
    NON_PAPER,
    DraftHeader,
    Payload,
    non_paper_message,
    open_non_paper,
    seal,
)
from protocol.errors import ProtocolError
from protocol.evidence import verify_evidence
from protocol.keys import DeviceKeys
from protocol.ledger import Ledger
from protocol.records import DraftId, MessageId, TalksId
from tests.protocol.builders import Sent, Talks

TEXT = "Non-paper: the envoy floats a joint commission on the river."


def world(seed: str) -> Talks:
    t = Talks(f"test_non_paper/{seed}")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    return t


def send_non_paper(t: Talks, sender: DeviceKeys, text: str = TEXT) -> Sent:
    payload = Payload(title="Non-paper", body=text)
    sealed = seal(
        sender=sender, talks=TalksId(t.talks_id), channel="plenary",
        counter=t.counters.get(sender.device_id, 0) + 1, msg=MessageId(t.rng(16)),
        draft=DraftId(t.rng(16)), version=1, parents=(), roster=t.roster.head,
        recipients=t.roster.channel_devices("plenary"), payload=payload, time=t.tick(),
        rng=t.rng, non_paper=True,
    )  # fmt: skip
    return t.log_draft(sealed, payload, sender)


def code_of(action: object) -> str:
    with pytest.raises(ProtocolError) as info:
        action()  # type: ignore[operator]
    return info.value.code


def test_a_non_paper_opens_for_every_recipient_and_its_header_commits_to_no_content() -> None:
    t = world("opens")
    sent = send_non_paper(t, t.people["med"].device)
    h = sent.sealed.header
    assert h.mode == NON_PAPER and h.commit == bytes(32)
    assert h.ct_hash != crypto.sha256(sent.sealed.ciphertext)
    assert parse(h.raw)["mode"] == "non_paper"
    for member in ("nh", "sh", "med"):
        assert t.open_as(t.people[member].device, sent).payload.body == TEXT
    assert DraftHeader.from_bytes(h.raw) == h


def test_server_relabelling_a_non_paper_as_attributable_is_caught() -> None:
    t = world("relabel-down")
    sent = send_non_paper(t, t.people["med"].device, "x")
    obj = parse(sent.sealed.header.raw)
    assert isinstance(obj, dict)
    del obj["mode"]
    fresh = t.fresh_ledger(sent.index)
    assert code_of(lambda: fresh.apply(canonical(obj))) == "bad_signature"


def test_server_relabelling_an_attributable_draft_as_a_non_paper_is_caught() -> None:
    t = world("relabel-up")
    sent = t.send(t.people["med"].device, "plenary", "Art. 1. " * 40)
    obj = parse(sent.sealed.header.raw)
    assert isinstance(obj, dict)
    obj["mode"] = "non_paper"
    fresh = t.fresh_ledger(sent.index)
    # The header then claims content it committed to: refused as a non-paper, and with
    # the commitment zeroed it is refused by the signature.
    assert code_of(lambda: fresh.apply(canonical(obj))) == "bad_value"
    obj["commit"] = b64e(bytes(32))
    assert code_of(lambda: fresh.apply(canonical(obj))) == "bad_signature"


def test_non_paper_disclosed_as_if_it_were_attributable_is_refused() -> None:
    t = world("disclosed")
    sent = send_non_paper(t, t.people["med"].device)
    bundle = t.evidence(sent)
    assert code_of(lambda: verify_evidence(bundle, pinned_talks=t.talks_id)) == "non_paper"


def test_an_altered_non_paper_fails_its_tag() -> None:
    t = world("altered")
    sent = send_non_paper(t, t.people["med"].device)
    ct = bytearray(sent.sealed.ciphertext)
    ct[0] ^= 1  # the first recipient's tag
    first = sent.sealed.header.recipients[0]
    altered = Sent(index=sent.index, sealed=type(sent.sealed)(
        header=sent.sealed.header, keys=sent.sealed.keys, ciphertext=bytes(ct),
        content_key=sent.sealed.content_key), payload=sent.payload, sender=sent.sender)  # fmt: skip
    assert code_of(lambda: t.open_as(t.keys[first], altered)) == "bad_tag"


def test_a_recipient_can_forge_a_non_paper_to_itself_so_it_proves_nothing_to_others() -> None:
    """Deniability: the tag key is the static-static X25519 secret, which the recipient
    computes as well as the sender, so any content it shows could be its own making."""
    t = world("deniable")
    med, sh = t.people["med"].device, t.people["sh"].device
    sent = send_non_paper(t, med)
    h = sent.sealed.header
    assert crypto.static_shared(med.box, sh.public.enc_pk) == crypto.static_shared(
        sh.box, med.public.enc_pk
    )
    # sh makes other content under the very same signed header, tagged as the sender would.
    key = crypto.new_content_key(t.rng)
    forged_body = "The envoy concedes everything".ljust(len(TEXT), ".")
    forged_text = Payload(title="Non-paper", body=forged_body).to_bytes()
    sealed = crypto.seal_payload(key, forged_text, h.talks + h.msg, t.rng)
    message = non_paper_message(h.talks, h.msg, h.sender, sealed,
                                crypto.commitment(key, forged_text))  # fmt: skip
    shared = crypto.static_shared(sh.box, med.public.enc_pk)
    tags = b"".join(
        crypto.non_paper_tag(shared, med.public.enc_pk, sh.public.enc_pk, message)
        if r == sh.device_id else bytes(32)
        for r in h.recipients
    )  # fmt: skip
    ciphertext = tags + sealed
    assert len(ciphertext) == h.ct_len  # the signed size is all the header fixes
    opened = open_non_paper(h, ciphertext, key, me=sh, sender=med.public)
    assert opened.body == forged_body


def test_a_non_paper_over_the_size_limit_is_refused() -> None:
    t = world("large")
    with pytest.raises(ProtocolError) as info:
        send_non_paper(t, t.people["med"].device, "x" * (70 * 1024))
    assert info.value.code == "too_large"


def test_ledger_accepts_a_non_paper_and_receipts_for_it() -> None:
    t = world("receipts")
    sent = send_non_paper(t, t.people["med"].device)
    t.receipt(t.people["nh"].device, sent)
    ledger = Ledger.from_genesis_bytes(t.entries[0])
    for data in t.entries[1:]:
        ledger.apply(data)
    assert ledger.drafts[sent.leaf].header.mode == NON_PAPER
