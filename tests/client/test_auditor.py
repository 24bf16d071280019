"""The auditor over logs built in memory: a clean log, then one test per attack.

Logs come from :func:`tests.client.log_builder.standard_log` (indices in its docstring):
0 genesis, 1-6 roster, 7-8 channels, 9 draft d1 (a1, plenary), 10-14 its received
receipts, 15 the mediator's acknowledgement, 16 draft d2 (b1, version 2 of d1), 17-20
its receipts (b2 never answers), 21 draft d3 (mediator, bilateral-alpha), 22 received,
23 rejected.  Every tampering test checks the index and the code of the alarm.
"""

from __future__ import annotations

import pytest

from client.auditor import (
    BAD_CHECKPOINT,
    FORK,
    LOG_TRUNCATED,
    NO_CHECKPOINT,
    NO_QUORUM,
    ROLLBACK,
    ROOT_MISMATCH,
    AuditReport,
    AuditState,
    _cut_verifies,
    _parse_chunk,
    _share,
    _verify_chunk,
    _verify_shared,
    audit_log,
)
from protocol import crypto
from protocol.encoding import b64d, b64e, canonical, parse
from protocol.errors import BadSignatureError
from protocol.hotparse import parse_hot_signed
from protocol.keys import DeviceId, DeviceKeys
from protocol.ledger import (
    Ledger,
    parse_entry,
    parse_entry_object,
    preverify,
    raw_signature_verifies,
    signature_claim,
    signature_verifies,
)
from protocol.receipt import Receipt, make_receipt
from protocol.records import sign_record
from protocol.roster import ChangeArgs
from tests.client.log_builder import LogBuilder, standard_log
from tests.helpers import make_rng

Codes = set[tuple[int | None, str]]


@pytest.fixture(scope="module")
def built() -> LogBuilder:
    builder, _ = standard_log(make_rng("auditor"))
    return builder


def audit(
    b: LogBuilder,
    entries: list[bytes] | None = None,
    checkpoints: list[bytes] | None = None,
    **kw: object,
) -> AuditReport:
    return audit_log(
        b.entries if entries is None else entries,
        pinned_talks=b.talks,
        checkpoints=[b.checkpoint()] if checkpoints is None else checkpoints,
        workers=1,
        **kw,  # type: ignore[arg-type]
    )


def codes(report: AuditReport) -> Codes:
    return {(a.index if a.index is not None else a.size, a.code) for a in report.alarms}


def rewrite(entry: bytes, **fields: object) -> bytes:
    """Change fields of an entry and re-encode it canonically (the signature is kept)."""
    obj = parse(entry)
    obj.update(fields)
    return canonical(obj)


# --- a clean log ------------------------------------------------------------------------


def test_clean_log_passes_with_counts(built: LogBuilder) -> None:
    report = audit(built, checkpoints=[built.checkpoint(16), built.checkpoint()])
    assert report.ok, report.render_text()
    assert report.size == 24
    assert report.root == built.tree.root()
    assert report.entries == {
        "genesis": 1,
        "roster": 6,
        "channel": 2,
        "draft": 3,
        "receipt": 12,
        "act": 0,
        "invalid": 0,
    }
    assert [(c.size, c.matches, c.trusted) for c in report.checkpoints] == [
        (16, True, True),
        (24, True, True),
    ]
    assert report.unquorate == 0
    channels = {c.channel: c for c in report.channels}
    assert channels["plenary"].drafts == 2
    assert channels["plenary"].receipts == {"received": 9, "acknowledged": 1, "rejected": 0}
    assert channels["bilateral-alpha"].receipts == {
        "received": 1,
        "acknowledged": 0,
        "rejected": 1,
    }
    delegations = {d.delegation: d for d in report.delegations}
    assert (delegations["alpha"].drafts, delegations["beta"].drafts) == (1, 1)
    assert delegations["beta"].members == 3
    assert delegations["alpha"].receipts == {"received": 4, "acknowledged": 0, "rejected": 1}
    # d2 is the only draft a member has not answered: b2 never received it.
    assert [(p.index, p.channel, p.sender, p.missing) for p in report.unreceived] == [
        (16, "plenary", "b1", ("b2",))
    ]
    assert report.unreceived[0].missing_devices == (built.keys["b2"].device_id,)
    unacked = {p.index: p.missing for p in report.unacknowledged}
    assert unacked[9] == ("a-head", "b-head", "b1", "b2")  # the mediator acknowledged d1
    assert unacked[21] == ("a-head", "a1")
    assert delegations["beta"].unreceived == 1
    assert delegations["alpha"].unreceived == 0


@pytest.mark.parametrize("reason", ["decryption_failed", "commitment_mismatch"])
def test_cheating_sender_is_reported_as_equivocation(reason: str) -> None:
    """A sender whose key does not open to its committed text for one recipient: the
    victim's signed rejection makes the audit fail with an alarm against the sender."""
    b, sent = standard_log(make_rng("auditor/equivocation"))
    index = b.receipt("b2", sent["d2"], "rejected", reason=reason)
    report = audit(b)
    assert not report.ok
    found = [a for a in report.alarms if a.code == "equivocation"]
    assert [a.index for a in found] == [sent["d2"].index]
    assert "b1" in found[0].reason and "b2" in found[0].reason and reason in found[0].reason
    assert index > sent["d2"].index


def test_rejection_for_a_host_fault_is_not_blamed_on_the_sender(built: LogBuilder) -> None:
    """``ciphertext_mismatch`` is the host serving other bytes than the sender signed."""
    report = audit(built)
    assert not [a for a in report.alarms if a.code == "equivocation"]


def test_report_renders_and_serialises(built: LogBuilder) -> None:
    report = audit(built)
    text = report.render_text()
    assert "OK" in text
    assert "#16" in text
    assert "missing b2" in text
    as_json = report.to_json()
    assert as_json["ok"] is True
    assert parse(canonical(as_json)) == as_json  # encodable with the protocol's encoder
    assert as_json["unreceived"][0]["missing"] == ["b2"]


def test_state_round_trips(built: LogBuilder) -> None:
    state = audit(built).state
    assert state is not None
    assert AuditState.from_bytes(state.to_bytes()) == state
    assert state.size == 24
    assert state.root == built.tree.root()


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 8, 4096])
def test_roots_at_every_chunk_size(built: LogBuilder, chunk_size: int) -> None:
    sizes = [1, 2, 3, 7, 8, 9, 16, 17, 23, 24]
    report = audit(built, checkpoints=[built.checkpoint(s) for s in sizes], chunk_size=chunk_size)
    assert report.ok, report.render_text()
    assert [c.size for c in report.checkpoints if c.matches] == sizes
    assert report.root == built.tree.root()


def test_progress_is_reported(built: LogBuilder) -> None:
    seen: list[tuple[int, int]] = []
    audit(built, chunk_size=8, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(8, 24), (16, 24), (24, 24)]


# --- entries tampered with ----------------------------------------------------------------


def test_altered_header_byte_is_a_bad_signature(built: LogBuilder) -> None:
    entries = list(built.entries)
    header = parse(entries[9])
    entries[9] = rewrite(entries[9], ct_len=header["ct_len"] + 1)
    report = audit(built, entries)
    assert (9, "bad_signature") in codes(report)
    # d1 was never applied, so its receipts name no draft.
    assert (10, "receipt_mismatch") in codes(report)
    assert (24, ROOT_MISMATCH) in codes(report)
    assert not report.ok


def test_flipped_byte_in_a_header_is_a_bad_signature(built: LogBuilder) -> None:
    entries = list(built.entries)
    at = entries[9].index(b'"commit":"') + len(b'"commit":"')
    raw = bytearray(entries[9])
    raw[at] = ord("A") if raw[at] != ord("A") else ord("B")  # still canonical base64url
    entries[9] = bytes(raw)
    report = audit(built, entries)
    assert (9, "bad_signature") in codes(report)


def test_non_canonical_header_is_rejected(built: LogBuilder) -> None:
    entries = list(built.entries)
    entries[9] = entries[9].replace(b'{"channel"', b'{ "channel"', 1)
    report = audit(built, entries)
    assert (9, "non_canonical") in codes(report)


def test_deleted_receipt_breaks_the_root_and_shows_missing(built: LogBuilder) -> None:
    entries = list(built.entries)
    del entries[13]  # b1's received receipt for d1
    report = audit(built, entries, checkpoints=[built.checkpoint(16), built.checkpoint()])
    found = codes(report)
    assert (16, ROOT_MISMATCH) in found
    # The log ends one entry early: the alarm names the first missing index.
    assert (len(entries), LOG_TRUNCATED) in found
    d1 = next(p for p in report.unreceived if p.index == 9)
    assert d1.missing == ("b1",)


def test_reordered_receipts_break_only_the_root(built: LogBuilder) -> None:
    entries = list(built.entries)
    entries[10], entries[11] = entries[11], entries[10]
    report = audit(built, entries)
    # Both orders are valid for the ledger; only the signed root tells them apart.
    assert codes(report) == {(24, ROOT_MISMATCH)}


def test_receipt_moved_before_its_draft(built: LogBuilder) -> None:
    entries = list(built.entries)
    entries[9], entries[10] = entries[10], entries[9]
    report = audit(built, entries)
    found = codes(report)
    assert (9, "receipt_mismatch") in found
    assert (24, ROOT_MISMATCH) in found


def test_roster_row_by_a_non_authority(built: LogBuilder) -> None:
    intruder = DeviceKeys.generate(make_rng("intruder"))
    change = built.make_change(
        built.keys["b-head"],
        "member.enrol",
        ChangeArgs(
            delegation="alpha",
            member="mole",
            member_name="Mole",
            devices=(intruder.public,),
        ),
    )
    entries = [*built.entries, change.raw]
    report = audit(built, entries, checkpoints=[built.checkpoint(entries=entries)])
    assert codes(report) == {(24, "unauthorised_change")}


def test_refused_enrolment_never_lends_its_key(built: LogBuilder) -> None:
    """The pre-scan collects keys from every roster row, valid or not: a draft signed
    by a device that only a refused row enrolled must still be refused."""
    mole = DeviceKeys.generate(make_rng("mole"))
    change = built.make_change(
        built.keys["a1"],  # a member, not the head
        "member.enrol",
        ChangeArgs(delegation="alpha", member="mole", member_name="Mole", devices=(mole.public,)),
    )
    draft = parse(built.entries[21])
    forged = {**draft, "sender": b64e(mole.device_id), "counter": 1}
    forged.pop("sig")
    signed = {**forged, "sig": b64e(mole.signing.sign(crypto.CTX_DRAFT, canonical(forged)))}
    entries = [*built.entries, change.raw, canonical(signed)]
    for workers in (1, 2):
        report = audit_log(
            entries,
            pinned_talks=built.talks,
            checkpoints=[built.checkpoint(entries=entries)],
            workers=workers,
            chunk_size=8,
        )
        assert codes(report) == {(24, "unauthorised_change"), (25, "unknown_device")}


def test_replaced_device_key(built: LogBuilder) -> None:
    entries = list(built.entries)
    obj = parse(entries[2])  # a-head enrols a1
    substitute = DeviceKeys.generate(make_rng("substitute"))
    obj["args"]["devices"] = [substitute.public.to_json()]
    entries[2] = canonical(obj)
    report = audit(built, entries)
    found = codes(report)
    assert (2, "bad_signature") in found
    assert (9, "unknown_device") in found  # a1's draft: a1 was never enrolled


# --- checkpoints ------------------------------------------------------------------------


def test_no_checkpoint_is_an_alarm(built: LogBuilder) -> None:
    report = audit(built, checkpoints=[])
    assert codes(report) == {(None, NO_CHECKPOINT)}


def test_forged_checkpoint_signature(built: LogBuilder) -> None:
    forger = crypto.SigningKey.generate(make_rng("forger"))
    forged = built.checkpoint(log_key=forger)
    report = audit(built, checkpoints=[built.checkpoint(16), forged])
    assert (None, BAD_CHECKPOINT) in codes(report)
    assert [c.size for c in report.checkpoints] == [16]


def test_checkpoint_signature_bit_flip(built: LogBuilder) -> None:
    note = bytearray(built.checkpoint())
    log_line = note.index("\u2014 ".encode()) + 40  # inside the log's signature
    note[log_line] = ord("A") if note[log_line] != ord("A") else ord("B")
    report = audit(built, checkpoints=[bytes(note)])
    assert (None, BAD_CHECKPOINT) in codes(report)


def test_latest_checkpoint_without_quorum(built: LogBuilder) -> None:
    report = audit(built, checkpoints=[built.checkpoint(16), built.checkpoint(cosigners=["beta"])])
    assert codes(report) == {(24, NO_QUORUM)}
    assert report.unquorate == 1


def test_older_checkpoint_without_quorum_is_counted_not_alarmed(built: LogBuilder) -> None:
    report = audit(built, checkpoints=[built.checkpoint(16, cosigners=[]), built.checkpoint()])
    assert report.ok
    assert report.unquorate == 1


def test_quorum_uses_the_roster_at_the_checkpoint(built: LogBuilder) -> None:
    # At size 2 only the mediator witnesses (alpha exists, but quorum is min(2, 2)).
    report = audit(built, checkpoints=[built.checkpoint(2, cosigners=["mediator", "alpha"])])
    assert report.ok
    # beta does not exist yet at size 2: its cosignature counts for nothing there.
    report = audit(built, checkpoints=[built.checkpoint(2, cosigners=["mediator", "beta"])])
    assert codes(report) == {(2, NO_QUORUM)}


def test_two_signed_roots_for_one_size_are_a_fork(built: LogBuilder) -> None:
    other = [*built.entries[:23], built.entries[22]]
    report = audit(built, checkpoints=[built.checkpoint(), built.checkpoint(entries=other)])
    found = codes(report)
    assert (24, FORK) in found
    assert (24, ROOT_MISMATCH) in found


# --- consistency with the previous audit --------------------------------------------------


def test_rollback_against_previous_state(built: LogBuilder) -> None:
    previous = audit(built).state
    report = audit(built, built.entries[:20], checkpoints=[built.checkpoint(20)], previous=previous)
    assert codes(report) == {(24, ROLLBACK)}


def test_fork_against_previous_state(built: LogBuilder) -> None:
    # Another valid last entry: a1 received d3 instead of rejecting it.
    header = built.ledger.drafts[built.ledger.draft_at[21]].header
    receipt = make_receipt(
        device=built.keys["a1"], header=header, index=21, kind="received", time=header.time + 1
    )
    other = [*built.entries[:23], receipt.raw]
    earlier = audit(built, other, checkpoints=[built.checkpoint(entries=other)])
    assert earlier.ok
    report = audit(built, previous=earlier.state)
    assert codes(report) == {(24, FORK)}


def test_previous_state_of_a_shorter_log_is_consistent(built: LogBuilder) -> None:
    earlier = audit(built, built.entries[:16], checkpoints=[built.checkpoint(16)])
    report = audit(built, previous=earlier.state)
    assert report.ok


# --- the trust root -------------------------------------------------------------------------


def test_wrong_pinned_talks(built: LogBuilder) -> None:
    report = audit_log(
        built.entries, pinned_talks=bytes(32), checkpoints=[built.checkpoint()], workers=1
    )
    assert codes(report) == {(0, "wrong_talks")}
    assert report.state is None


def test_empty_log(built: LogBuilder) -> None:
    report = audit_log([], pinned_talks=built.talks, checkpoints=[], workers=1)
    assert not report.ok


def test_second_genesis_is_out_of_sequence(built: LogBuilder) -> None:
    entries = [*built.entries, built.entries[0]]
    report = audit(built, entries, checkpoints=[built.checkpoint(entries=entries)])
    assert codes(report) == {(24, "bad_sequence")}


# --- parallel workers -------------------------------------------------------------------------


def test_two_workers_report_exactly_what_one_does(built: LogBuilder) -> None:
    entries = list(built.entries)
    entries[9] = rewrite(entries[9], time=0)
    del entries[13]
    checkpoints = [
        built.checkpoint(8),
        built.checkpoint(16, cosigners=["alpha"]),
        built.checkpoint(),
    ]
    reports = [
        audit_log(
            entries,
            pinned_talks=built.talks,
            checkpoints=checkpoints,
            workers=workers,
            chunk_size=4,
        ).to_json()
        for workers in (1, 2)
    ]
    assert reports[0] == reports[1]
    assert reports[0]["alarms"]
    clean = [
        audit_log(
            iter(built.entries),  # any iterable will do
            pinned_talks=built.talks,
            checkpoints=[built.checkpoint()],
            workers=workers,
            chunk_size=4,
        ).to_json()
        for workers in (1, 2)
    ]
    assert clean[0] == clean[1]
    assert clean[0]["ok"] is True


def test_any_number_of_workers_reports_what_one_does(built: LogBuilder) -> None:
    """With three processes (two in the pool) and chunks of two entries, the main process
    both hands chunks to the pool and verifies some itself; pool processes read a list
    they inherited or receive the bytes of an iterator's chunks.  Same reports."""
    entries = list(built.entries)
    entries[12] = rewrite(entries[12], time=1)  # a receipt whose signature fails
    entries[21] = entries[21][:-2]  # a draft that does not parse
    checkpoints = [built.checkpoint(8), built.checkpoint(entries=entries)]
    expected = audit_log(
        entries, pinned_talks=built.talks, checkpoints=checkpoints, workers=1, chunk_size=2
    ).to_json()
    assert expected["alarms"]
    for workers in (2, 3):
        for log in (entries, tuple(entries), iter(entries)):
            report = audit_log(
                log,
                pinned_talks=built.talks,
                checkpoints=checkpoints,
                workers=workers,
                chunk_size=2,
            )
            assert report.to_json() == expected


def test_shared_log_chunks_verify_like_sent_ones(built: LogBuilder) -> None:
    """What a pool process verifies by position in the log it inherited
    (:func:`client.auditor._verify_shared`) equals :func:`_verify_chunk` on the bytes."""
    keys: dict[DeviceId, bytes] = {}
    _, checks = _parse_chunk(built.entries, keys)
    assert checks
    try:
        _share(built.entries)
        for start, length in ((0, 24), (8, 8), (16, 8)):
            sub = [
                (p - start, key, context, sig, offset)
                for p, key, context, sig, offset in checks
                if start <= p < start + length
            ]
            assert _verify_shared(start, length, sub, ()) == _verify_chunk(
                built.entries[start : start + length], sub, ()
            )
    finally:
        _share(())


# --- the ledger's pre-verified path ------------------------------------------------------------


def test_verified_key_of_another_device_does_not_skip_the_check(built: LogBuilder) -> None:
    """The skip flag cannot wave a bad signature through: it is honoured only for the
    exact key the roster holds for the signing device."""
    ledger = Ledger(built.genesis)
    for raw in built.entries[1:9]:
        ledger.apply(raw)
    tampered = rewrite(built.entries[9], time=0)
    entry = parse_entry(tampered)
    with pytest.raises(BadSignatureError):
        ledger.apply_entry(entry, verified_key=built.keys["a-head"].public.sign_pk)
    with pytest.raises(BadSignatureError):
        ledger.apply_entry(entry)
    assert ledger.size == 9  # nothing applied


def test_signature_verifies_only_under_the_signing_key(built: LogBuilder) -> None:
    a1 = built.keys["a1"].public.sign_pk
    entry, obj = parse_entry_object(built.entries[9])
    assert entry == parse_entry(built.entries[9])
    claim = signature_claim(entry)
    assert claim == (built.keys["a1"].device_id, crypto.CTX_DRAFT)
    assert signature_verifies(a1, claim[1], obj)
    assert not signature_verifies(built.keys["a-head"].public.sign_pk, claim[1], obj)
    assert not signature_verifies(a1, crypto.CTX_RECEIPT, obj)  # another record type
    _, tampered = parse_entry_object(rewrite(built.entries[9], time=0))
    assert not signature_verifies(a1, claim[1], tampered)
    assert signature_claim(parse_entry(built.entries[1])) is None  # roster: main process


def test_preverify_returns_only_a_key_that_verified(built: LogBuilder) -> None:
    a1 = built.keys["a1"]
    keys = {a1.device_id: a1.public.sign_pk}
    entry, leaf, key = preverify(built.entries[9], keys)
    assert key == a1.public.sign_pk
    assert leaf == built.tree.leaf(9)
    assert entry == parse_entry(built.entries[9])
    assert preverify(rewrite(built.entries[9], time=0), keys)[2] is None
    assert preverify(built.entries[9], {})[2] is None
    assert preverify(built.entries[2], keys)[2] is None  # roster changes: never pre-verified


def test_raw_signature_check_agrees_with_the_parsed_one(built: LogBuilder) -> None:
    """The workers cut the signed bytes out of the entry instead of re-encoding it; for
    every entry, and for records where the cut cannot be used, both checks agree."""
    keys = {k.device_id: k.public.sign_pk for k in built.keys.values()}
    for raw in built.entries[9:]:
        entry, obj = parse_entry_object(raw)
        claim = signature_claim(entry)
        assert claim is not None
        key = keys[claim[0]]
        assert raw_signature_verifies(key, claim[1], raw, entry.sig)
        assert signature_verifies(key, claim[1], obj)
        other = built.keys["clerk"].public.sign_pk
        assert not raw_signature_verifies(other, claim[1], raw, entry.sig)
        wrong_context = crypto.CTX_RECEIPT if claim[1] == crypto.CTX_DRAFT else crypto.CTX_DRAFT
        assert not raw_signature_verifies(key, wrong_context, raw, entry.sig)
    signer = built.keys["a1"]
    pk = signer.public.sign_pk
    for body in (
        {"t": "x", "z": 1},  # "sig" sorts first: nothing before it, so re-parse
        {"a": {"sig": "nested"}, "t": "x"},  # a nested "sig" member with another value
    ):
        record = sign_record(signer.signing, crypto.CTX_RECEIPT, dict(body))
        raw = canonical(record)
        assert signature_verifies(pk, crypto.CTX_RECEIPT, parse(raw))
        assert raw_signature_verifies(pk, crypto.CTX_RECEIPT, raw, b64d(record["sig"]))
    # The member text twice (a nested copy of the signature): re-parse, and it fails as
    # the parsed check does, since the copy is part of what was signed.
    record = sign_record(signer.signing, crypto.CTX_RECEIPT, {"t": "x"})
    twice = canonical({**record, "a": {"sig": record["sig"]}})
    assert twice.count(b'"sig":"' + record["sig"].encode()) == 2
    assert not signature_verifies(pk, crypto.CTX_RECEIPT, parse(twice))
    assert not raw_signature_verifies(pk, crypto.CTX_RECEIPT, twice, b64d(record["sig"]))
    flipped = bytearray(built.entries[10])
    flipped[flipped.index(b'"commit":"') + 10] ^= 0x01
    receipt = parse_entry(built.entries[10])
    assert isinstance(receipt, Receipt)
    key = keys[receipt.device]
    assert not raw_signature_verifies(key, crypto.CTX_RECEIPT, bytes(flipped), receipt.sig)


def test_signature_cut_at_the_parsed_offset_agrees(built: LogBuilder) -> None:
    """Workers cut the signature out where the fast parser found it
    (:func:`protocol.hotparse.parse_hot_signed`); that check agrees with
    :func:`raw_signature_verifies` on every hot entry, valid or tampered."""
    keys = {k.device_id: k.public.sign_pk for k in built.keys.values()}
    other = built.keys["clerk"].public.sign_pk
    hot_seen = 0
    for raw in built.entries[1:]:
        hot = parse_hot_signed(raw)
        if hot is None:
            continue
        hot_seen += 1
        entry, offset = hot
        claim = signature_claim(entry)
        assert claim is not None
        key = keys[claim[0]]
        assert _cut_verifies(key, claim[1], raw, entry.sig, offset)
        assert not _cut_verifies(other, claim[1], raw, entry.sig, offset)
        tampered = raw.replace(b'"time":', b'"time":1', 1)
        tampered_hot = parse_hot_signed(tampered)
        assert tampered_hot is not None
        assert _cut_verifies(
            key, claim[1], tampered, entry.sig, tampered_hot[1]
        ) == raw_signature_verifies(key, claim[1], tampered, entry.sig)
        assert not raw_signature_verifies(key, claim[1], tampered, entry.sig)
    assert hot_seen > 0
