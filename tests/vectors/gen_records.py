"""Generate ``tests/vectors/records.json``: known answers for signed records and the log.

Run from the repository root::

    python -m tests.vectors.gen_records          # rewrite the file
    python -m tests.vectors.gen_records --check  # exit 1 if the file is stale

One small set of talks, built with :class:`tests.protocol.builders.Talks` from the fixed
seed ``vectors/records`` (every key, nonce and ephemeral key comes from
:func:`tests.helpers.make_rng`; time is a counter): the device keys, the genesis with its
talks id and fingerprint, every log entry with its leaf hash, the tree root, the drafts
with their wrapped keys, ciphertexts and content keys, the acceptance promises, a cosigned
checkpoint note and an evidence bundle with the report it proves.

Negative cases are named ``<record>/<mutation>`` (``draft/wrong-recipient-set``,
``receipt/wrong-index``, ``roster/stale-prev``) and give the stable error ``code``.  Each
says how to check it (``check``):

``ledger``     replay the first ``prefix`` log entries, then apply ``entry``;
``genesis``    parse ``entry`` as a genesis;
``open``       replay ``prefix`` entries, open ``header`` with ``keys`` and ``ciphertext``
               as ``device`` (sender and recipients from that roster);
``content``    open the draft at ``draft`` with the disclosed ``content_key``;
``promise``    verify ``record`` with the genesis log key;
``checkpoint`` open ``note`` with the genesis log key, then require the roster's quorum;
``evidence``   apply ``patch`` to the valid bundle and verify it against ``pinned`` (or
               the talks id); the error names the failing ``step``.

Patches are lists of ``["set", path, value]``, ``["delete", path]`` and
``["swap", path_a, path_b]`` over the bundle's JSON.

Bytes are unpadded base64url, as on the wire.  Changing an existing vector means the wire
format changed: that needs a protocol version bump, not a regenerated file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from protocol import checkpoint as cp
from protocol import crypto
from protocol.encoding import JSONValue, b64d, b64e, canonical, parse
from protocol.envelope import Payload, keys_hash, keys_to_json
from protocol.evidence import verify_evidence
from protocol.grants import KIND as GRANT_KIND
from protocol.grants import RECEIPT_KIND, grant_receipt_body, make_grant_body
from protocol.keys import DeviceKeys
from protocol.receipt import ACKNOWLEDGED, REJECTED, make_receipt
from protocol.roster import ChangeArgs, make_change
from tests.helpers import make_rng
from tests.protocol.builders import Talks, resign
from tests.vectors.writer import write_or_check

OUTPUT = Path(__file__).with_name("records.json")
SEED = "vectors/records"

Case = dict[str, Any]


def scenario() -> Talks:
    """The talks every vector comes from."""
    t = Talks(SEED, quorum=3)
    t.enrol_staff("sam", "observer")
    t.create_delegation("north", "nh")
    t.create_delegation("south", "sh")
    t.enrol("north", "na")
    t.enrol("south", "sa")
    t.enrol("north", "nx")
    t.remove_member("nx")
    t.create_channel("plenary", delegations=["north", "south"], members=["med"])
    t.create_channel("north-room", delegations=["north"], members=["med"], kind="bilateral")
    d1 = t.send(t.people["na"].device, "plenary", "Article 1. A corridor opens at dawn.")
    for who in ("nh", "sa", "sh", "med"):
        t.receipt(t.people[who].device, d1)
    t.receipt(t.mediator.device, d1, ACKNOWLEDGED)
    d2 = t.send(
        t.people["sa"].device,
        "plenary",
        payload=Payload(
            title="Annex A",
            body="Counter-proposal: at noon.",
            file_name="annex-a.txt",
            media_type="text/plain",
            file_data=b"Annex A\n1. Noon.\n",
        ),
        reply_to=d1,
    )
    t.receipt(t.people["na"].device, d2)
    t.receipt(t.people["sh"].device, d2, REJECTED, reason="commitment_mismatch")
    t.send(t.people["nh"].device, "north-room", "Internal note.")
    # The lifecycle (docs/PROTOCOL.md section 5a): na's own device proposes a laptop and
    # the head approves it, then rotates it; sb joins, sends a draft and has the device
    # revoked as compromised from that draft on.
    na, nh = t.people["na"].device, t.people["nh"].device
    laptop = t.new_device()
    t.change(na, "device.propose", ChangeArgs(member="na", devices=(laptop.public,)))
    t.change(nh, "device.add", ChangeArgs(member="na", devices=(laptop.public,)))
    rotated = t.new_device()
    t.change(
        nh,
        "device.rotate",
        ChangeArgs(member="na", device=laptop.device_id, devices=(rotated.public,)),
    )
    t.people["na"].devices += [laptop, rotated]
    sb = t.enrol("south", "sb").device
    lost = t.send(sb, "plenary", "Sent from a lost laptop.")
    t.change(
        t.people["sh"].device,
        "device.revoke",
        ChangeArgs(member="sb", device=sb.device_id, since=lost.index),
    )
    # A history grant: nh re-wraps the plenary's first two drafts to na's rotated
    # device, which receipts the first through the grant (docs/PROTOCOL.md section 8b).
    plenary = sorted(i for i, s in t.sent.items() if s.sealed.header.channel == "plenary")[:2]
    t.act(
        nh,
        GRANT_KIND,
        make_grant_body(
            channel="plenary",
            device=rotated.public,
            upto=plenary[-1],
            content_keys={i: t.sent[i].sealed.content_key for i in plenary},
            rng=t.rng,
        ),
    )
    grant_at = len(t.entries) - 1
    t.act(
        rotated,
        RECEIPT_KIND,
        grant_receipt_body(
            index=plenary[0],
            entry=t.sent[plenary[0]].leaf,
            grant=grant_at,
            kind="received",
            reason=None,
        ),
    )
    return t


def _entry(data: bytes) -> JSONValue:
    return parse(data)


# --- positive vectors ---------------------------------------------------------------------


def _devices(t: Talks) -> list[Case]:
    out = []
    for member, person in sorted(t.people.items()):
        for i, keys in enumerate(person.devices):
            out.append(_device_case(f"{member}/{i}", member, keys))
    return out


def _device_case(name: str, member: str, keys: DeviceKeys) -> Case:
    return {
        "name": name,
        "member": member,
        "private": b64e(keys.private_bytes()),
        "device_id": b64e(keys.device_id),
        "sign": b64e(keys.public.sign_pk),
        "enc": b64e(keys.public.enc_pk),
        "fingerprint": keys.public.fingerprint,
    }


def device_name(t: Talks, device_id: bytes) -> str:
    for member, person in t.people.items():
        for i, keys in enumerate(person.devices):
            if keys.device_id == device_id:
                return f"{member}/{i}"
    raise KeyError(device_id)


def _log(t: Talks) -> list[Case]:
    return [
        {
            "index": i,
            "type": parse(data)["t"],
            "entry": _entry(data),
            "leaf": b64e(t.tree.leaf(i)),
        }
        for i, data in enumerate(t.entries)
    ]


def _drafts(t: Talks) -> list[Case]:
    out = []
    for index, sent in sorted(t.sent.items()):
        out.append(
            {
                "index": index,
                "sender": device_name(t, sent.sender.device_id),
                "keys": keys_to_json(sent.sealed.keys),
                "ciphertext": b64e(sent.sealed.ciphertext),
                "content_key": b64e(sent.sealed.content_key),
                "payload": parse(sent.payload.to_bytes()),
                "commit": b64e(sent.sealed.header.commit),
            }
        )
    return out


def _report(t: Talks, bundle_bytes: bytes) -> Case:
    report = verify_evidence(bundle_bytes, t.talks_id)
    return {
        "index": report.index,
        "channel": report.channel,
        "sender_member": report.sender_member,
        "sender_device": b64e(report.sender_device),
        "recipients": list(report.recipients),
        "cosigners": list(report.cosigners),
        "checkpoint_size": report.checkpoint_size,
        "receipts": [[f.index, f.member, f.kind, f.reason] for f in report.receipts],
        "payload": parse(report.payload.to_bytes()),
    }


# --- negative vectors ---------------------------------------------------------------------


def _ledger_case(name: str, prefix: int, entry: bytes, error: str) -> Case:
    return {
        "name": name,
        "check": "ledger",
        "prefix": prefix,
        "entry": _entry(entry),
        "error": error,
    }


def _negative(t: Talks) -> list[Case]:
    cases: list[Case] = []
    n = len(t.entries)
    types = [parse(e)["t"] for e in t.entries]
    first_draft = types.index("draft")
    roster_prefix = first_draft  # the roster is complete just before the first draft
    d1 = t.sent[first_draft]
    d2_index = sorted(t.sent)[1]
    d2 = t.sent[d2_index]
    med, nh, na, sa, sh = (t.people[p].device for p in ("med", "nh", "na", "sa", "sh"))
    retired = next(k for k in t.keys.values() if k.device_id in t.roster_at(first_draft).retired)
    stranger = DeviceKeys.from_private_bytes(crypto.sha256(b"stranger") * 2)

    # genesis
    cases.append(_ledger_case("genesis/second-genesis", n, t.entries[0], "bad_sequence"))
    g = parse(t.entries[0])
    g["title"] = "Other talks"
    cases.append(
        {
            "name": "genesis/edited-after-signing",
            "check": "genesis",
            "entry": g,
            "error": "bad_signature",
        }
    )
    g2 = resign(parse(t.entries[0]), med.signing, crypto.CTX_ROSTER)
    cases.append(
        {"name": "genesis/wrong-context", "check": "genesis", "entry": g2, "error": "bad_signature"}
    )

    # roster
    roster = t.roster_at(roster_prefix)

    def change(author: DeviceKeys, op: str, args: ChangeArgs, at: int = roster_prefix) -> bytes:
        return make_change(
            author=author, roster=t.roster_at(at), op=op, args=args, time=1
        ).to_bytes()

    enrol = ChangeArgs(
        delegation="north", member="nn", member_name="New", devices=(stranger.public,)
    )
    cases.append(
        _ledger_case(
            "roster/stale-prev",
            roster_prefix,
            change(nh, "member.enrol", enrol, at=roster_prefix - 1),
            "stale_roster",
        )
    )
    cases.append(_ledger_case("roster/replayed-change", n, t.entries[3], "stale_roster"))
    obj = parse(change(nh, "member.enrol", enrol))
    obj["seq"] += 1
    cases.append(
        _ledger_case(
            "roster/wrong-seq",
            roster_prefix,
            canonical(resign(obj, nh.signing, crypto.CTX_ROSTER)),
            "stale_roster",
        )
    )
    obj = parse(change(nh, "member.enrol", enrol))
    obj["talks"] = b64e(crypto.sha256(b"other talks"))
    cases.append(
        _ledger_case(
            "roster/wrong-talks",
            roster_prefix,
            canonical(resign(obj, nh.signing, crypto.CTX_ROSTER)),
            "wrong_talks",
        )
    )
    cases.append(
        _ledger_case(
            "roster/head-of-other-delegation",
            roster_prefix,
            change(sh, "member.enrol", enrol),
            "unauthorised_change",
        )
    )
    cases.append(
        _ledger_case(
            "roster/mediator-enrols-delegation-member",
            roster_prefix,
            change(med, "member.enrol", enrol),
            "unauthorised_change",
        )
    )
    cases.append(
        _ledger_case(
            "roster/member-creates-channel",
            roster_prefix,
            change(
                na,
                "channel.create",
                ChangeArgs(channel="x", name="X", kind="bilateral", members=("na",)),
            ),
            "unauthorised_change",
        )
    )
    cases.append(
        _ledger_case(
            "roster/observer-enrols-staff",
            roster_prefix,
            change(
                t.people["sam"].device,
                "staff.enrol",
                ChangeArgs(member="s2", member_name="S", role="staff", devices=(stranger.public,)),
            ),
            "unauthorised_change",
        )
    )
    # names people read (protocol.names): refused by every parser, or by the roster
    for label, unreadable in (
        ("rtl-override", "Eve\u202etxt.exe"),
        ("zero-width-space", "Me\u200bmber na"),
        ("nul", "New\x00"),
        ("c1-csi", "New\x9b31m"),
        ("not-nfc", "Jose\u0301"),
    ):
        obj = parse(change(nh, "member.enrol", enrol))
        obj["args"]["member_name"] = unreadable
        cases.append(
            _ledger_case(
                f"roster/name-{label}",
                roster_prefix,
                canonical(resign(obj, nh.signing, crypto.CTX_ROSTER)),
                "bad_name",
            )
        )
    lookalike = ChangeArgs(
        delegation="north",
        member="nn",
        member_name=roster.members["na"].name.replace("a", "\u0430"),  # Cyrillic a
        devices=(stranger.public,),
    )
    cases.append(
        _ledger_case(
            "roster/confusable-member-name",
            roster_prefix,
            change(nh, "member.enrol", lookalike),
            "confusable_name",
        )
    )
    cases.append(
        _ledger_case(
            "roster/unknown-author",
            roster_prefix,
            change(stranger, "member.enrol", enrol),
            "unknown_device",
        )
    )
    cases.append(
        _ledger_case(
            "roster/removed-author",
            roster_prefix,
            change(retired, "member.enrol", enrol),
            "unknown_device",
        )
    )
    cases.append(
        _ledger_case(
            "roster/re-adding-retired-device",
            roster_prefix,
            change(nh, "device.add", ChangeArgs(member="na", devices=(retired.public,))),
            "roster_conflict",
        )
    )
    cases.append(
        _ledger_case(
            "roster/removing-a-head",
            roster_prefix,
            change(nh, "member.remove", ChangeArgs(member="nh")),
            "roster_conflict",
        )
    )
    cases.append(
        _ledger_case(
            "roster/removing-last-device",
            roster_prefix,
            change(nh, "device.remove", ChangeArgs(member="na", device=na.device_id)),
            "roster_conflict",
        )
    )
    cases.append(
        _ledger_case(
            "roster/duplicate-member-id",
            roster_prefix,
            change(
                nh,
                "member.enrol",
                ChangeArgs(
                    delegation="north", member="nx", member_name="X", devices=(stranger.public,)
                ),
            ),
            "roster_conflict",
        )
    )
    cases.append(
        _ledger_case(
            "roster/delegation-takes-mediator-witness-slot",
            roster_prefix,
            change(
                med,
                "delegation.create",
                ChangeArgs(
                    delegation="mediator",
                    name="M",
                    member="mh",
                    member_name="M",
                    devices=(stranger.public,),
                ),
            ),
            "roster_conflict",
        )
    )
    obj = parse(change(med, "channel.members", ChangeArgs(channel="plenary", members=("med",))))
    cases.append(
        _ledger_case(
            "roster/wrong-context",
            roster_prefix,
            canonical(resign(obj, med.signing, crypto.CTX_ROSTER)),
            "bad_signature",
        )
    )
    obj = parse(change(nh, "member.enrol", enrol))
    obj["args"]["devices"] = [retired.public.to_json()]
    cases.append(
        _ledger_case(
            "roster/substituted-device-key", roster_prefix, canonical(obj), "bad_signature"
        )
    )
    # lifecycle
    cases.append(
        _ledger_case(
            "roster/rotation-by-old-key-alone",
            n,
            change(
                na,
                "device.rotate",
                ChangeArgs(member="na", device=na.device_id, devices=(stranger.public,)),
                at=n,
            ),
            "unauthorised_change",
        )
    )
    sb = t.people["sb"].device
    cases.append(
        _ledger_case(
            "roster/revoked-device-enrolled-again",
            n,
            change(sh, "device.add", ChangeArgs(member="sb", devices=(sb.public,)), at=n),
            "roster_conflict",
        )
    )
    cases.append(
        _ledger_case(
            "roster/compromise-from-future-index",
            n,
            change(
                nh,
                "device.revoke",
                ChangeArgs(member="na", device=na.device_id, since=n + 1),
                at=n,
            ),
            "roster_conflict",
        )
    )
    cases.append(
        _ledger_case(
            "roster/proposal-for-another-member",
            n,
            change(sh, "device.propose", ChangeArgs(member="na", devices=(stranger.public,)), at=n),
            "unauthorised_change",
        )
    )
    del roster

    # drafts (applied at the end of the log unless said otherwise)
    def sealed_bytes(sender: DeviceKeys, channel: str = "plenary", **kw: Any) -> bytes:
        return t.seal(sender, channel, **kw).header.to_bytes()

    devices = t.roster.channel_devices("plenary")
    fewer = dict(list(devices.items())[1:])
    cases.append(
        _ledger_case(
            "draft/wrong-recipient-set", n, sealed_bytes(nh, recipients=fewer), "recipient_mismatch"
        )
    )
    cases.append(
        _ledger_case(
            "draft/stale-roster", n, sealed_bytes(nh, roster=t.roster.history[-2]), "stale_roster"
        )
    )
    cases.append(
        _ledger_case(
            "draft/counter-gap",
            n,
            sealed_bytes(na, counter=t.counters[na.device_id] + 2),
            "bad_counter",
        )
    )
    cases.append(
        _ledger_case(
            "draft/counter-repeat",
            n,
            sealed_bytes(na, counter=t.counters[na.device_id]),
            "bad_counter",
        )
    )
    cases.append(
        _ledger_case(
            "draft/duplicate-msg", n, sealed_bytes(na, msg=d1.sealed.header.msg), "duplicate"
        )
    )
    cases.append(
        _ledger_case(
            "draft/lineage-v1-reuses-draft-id",
            n,
            sealed_bytes(sh, draft=d1.sealed.header.draft),
            "bad_lineage",
        )
    )
    cases.append(
        _ledger_case(
            "draft/lineage-wrong-version",
            n,
            sealed_bytes(sh, draft=d1.sealed.header.draft, version=3, parents=[d1.leaf]),
            "bad_lineage",
        )
    )
    cases.append(
        _ledger_case(
            "draft/lineage-parent-in-another-channel",
            n,
            sealed_bytes(
                nh, "north-room", draft=d1.sealed.header.draft, version=2, parents=[d1.leaf]
            ),
            "bad_lineage",
        )
    )
    cases.append(
        _ledger_case("draft/non-member-sender", n, sealed_bytes(sa, "north-room"), "not_a_member")
    )
    sb = t.people["sb"].device
    cases.append(_ledger_case("draft/revoked-device", n, sealed_bytes(sb), "revoked_device"))

    # history grants (acts, at the end of the log)
    plenary = sorted(i for i, s in t.sent.items() if s.sealed.header.channel == "plenary")
    rotated = t.people["na"].devices[-1]

    def grant(by: DeviceKeys, to: DeviceKeys, channel: str = "plenary") -> bytes:
        body = make_grant_body(
            channel=channel,
            device=to.public,
            upto=plenary[-1],
            content_keys={plenary[-1]: t.sent[plenary[-1]].sealed.content_key},
            rng=t.rng,
        )
        return t.act(by, GRANT_KIND, body, apply=False).to_bytes()

    cases.append(
        _ledger_case("grant/from-a-non-head", n, grant(sa, rotated), "unauthorised_change")
    )
    cases.append(
        _ledger_case("grant/server-injected", n, grant(stranger, rotated), "unknown_device")
    )
    cases.append(
        _ledger_case(
            "grant/to-a-device-not-in-the-channel",
            n,
            grant(med, t.people["sam"].device),
            "not_a_member",
        )
    )
    cases.append(_ledger_case("grant/to-an-original-recipient", n, grant(nh, na), "duplicate"))
    cases.append(
        _ledger_case(
            "draft/wrong-talks",
            n,
            sealed_bytes(nh, talks=crypto.sha256(b"other talks")),
            "wrong_talks",
        )
    )
    obj = parse(sealed_bytes(nh))
    obj["time"] += 1
    cases.append(_ledger_case("draft/edited-after-signing", n, canonical(obj), "bad_signature"))
    cases.append(
        _ledger_case(
            "draft/signed-by-another-device",
            n,
            canonical(resign(parse(sealed_bytes(nh)), na.signing, crypto.CTX_DRAFT)),
            "bad_signature",
        )
    )

    # opening (d1, as its roster stood)
    keys = keys_to_json(d1.sealed.keys)
    ids = sorted(keys)
    swapped = {**keys, ids[0]: keys[ids[1]], ids[1]: keys[ids[0]]}
    ct = bytearray(d1.sealed.ciphertext)
    ct[30] ^= 1

    def open_case(name: str, device: str, error: str, **over: JSONValue) -> Case:
        case: Case = {
            "name": name,
            "check": "open",
            "prefix": first_draft,
            "device": device,
            "header": _entry(t.entries[first_draft]),
            "keys": keys,
            "ciphertext": b64e(d1.sealed.ciphertext),
            "error": error,
        }
        case.update(over)
        return case

    cases.append(
        open_case(
            "draft/altered-ciphertext", "sa/0", "ciphertext_mismatch", ciphertext=b64e(bytes(ct))
        )
    )
    cases.append(
        open_case(
            "draft/swapped-wrapped-keys",
            device_name(t, b64d(ids[0])),
            "ciphertext_mismatch",
            keys=swapped,
        )
    )
    cases.append(open_case("draft/not-a-recipient", "nx/0", "not_a_recipient"))
    cases.append(
        open_case(
            "draft/wrong-talks-pinned",
            "sa/0",
            "wrong_talks",
            pinned=b64e(crypto.sha256(b"other talks")),
        )
    )
    # A sender committing to one text and encrypting another.
    rng = make_rng("vectors/commit")
    rng_key = crypto.new_content_key(rng)
    claimed = Payload(title="t", body="claimed").to_bytes()
    sent_text = Payload(title="t", body="actually sent").to_bytes()
    msg = rng(16)
    sealed = crypto.seal_payload(rng_key, sent_text, t.talks_id + msg, rng)
    wrapped = {
        d: crypto.wrap_key(rng_key, p.enc_pk, rng)
        for d, p in t.roster_at(first_draft).channel_devices("plenary").items()
    }
    body = parse(t.entries[first_draft])
    body.update(
        commit=b64e(crypto.commitment(rng_key, claimed)),
        ct_hash=b64e(crypto.sha256(sealed)),
        ct_len=len(sealed),
        msg=b64e(msg),
        wrapped=b64e(keys_hash(wrapped)),
    )
    forged = resign(body, na.signing, crypto.CTX_DRAFT)
    cases.append(
        open_case(
            "draft/commitment-mismatch",
            "sa/0",
            "commitment_mismatch",
            header=forged,
            keys=keys_to_json(wrapped),
            ciphertext=b64e(sealed),
        )
    )
    cases.append(
        {
            "name": "draft/wrong-content-key",
            "check": "content",
            "draft": first_draft,
            "content_key": b64e(crypto.sha256(b"wrong key")),
            "error": "decryption_failed",
        }
    )

    # receipts
    def receipt(
        device: DeviceKeys, index: int, kind: str = "received", header: Any = None
    ) -> bytes:
        return make_receipt(
            device=device, header=header or d1.sealed.header, index=index, kind=kind, time=1
        ).to_bytes()

    cases.append(_ledger_case("receipt/wrong-index", n, receipt(na, d2_index), "receipt_mismatch"))
    obj = parse(receipt(na, first_draft))
    obj["entry"] = b64e(d2.leaf)
    cases.append(
        _ledger_case(
            "receipt/wrong-entry",
            n,
            canonical(resign(obj, na.signing, crypto.CTX_RECEIPT)),
            "receipt_mismatch",
        )
    )
    cases.append(
        _ledger_case(
            "receipt/non-recipient",
            n,
            receipt(t.people["sam"].device, first_draft),
            "receipt_mismatch",
        )
    )
    cases.append(
        _ledger_case("receipt/unknown-device", n, receipt(stranger, first_draft), "unknown_device")
    )
    cases.append(
        _ledger_case("receipt/duplicate-received", n, receipt(sa, first_draft), "duplicate")
    )
    cases.append(
        _ledger_case(
            "receipt/ack-before-received",
            n,
            receipt(nh, d2_index, ACKNOWLEDGED, d2.sealed.header),
            "receipt_mismatch",
        )
    )
    cases.append(
        _ledger_case(
            "receipt/received-after-rejected",
            n,
            receipt(sh, d2_index, "received", d2.sealed.header),
            "duplicate",
        )
    )
    obj = parse(receipt(na, first_draft))
    obj["kind"] = "acknowledged"
    cases.append(_ledger_case("receipt/edited-after-signing", n, canonical(obj), "bad_signature"))
    cases.append(
        _ledger_case(
            "receipt/wrong-context",
            n,
            canonical(resign(parse(receipt(na, first_draft)), na.signing, crypto.CTX_DRAFT)),
            "bad_signature",
        )
    )

    # entries
    cases.append(
        _ledger_case("entry/unknown-type", n, canonical({"t": "memo", "v": 1}), "malformed")
    )
    obj = parse(receipt(na, first_draft))
    obj["note"] = "x"
    cases.append(
        _ledger_case(
            "entry/unknown-field",
            n,
            canonical(resign(obj, na.signing, crypto.CTX_RECEIPT)),
            "unknown_field",
        )
    )

    # promises
    p = t.promises[first_draft].to_json()
    p["index"] += 1
    cases.append(
        {"name": "promise/edited-index", "check": "promise", "record": p, "error": "bad_signature"}
    )
    cases.append(
        {
            "name": "promise/wrong-context",
            "check": "promise",
            "record": resign(t.promises[first_draft].to_json(), t.log_key, crypto.CTX_RECEIPT),
            "error": "bad_signature",
        }
    )
    cases.append(
        {
            "name": "promise/signed-by-mediator",
            "check": "promise",
            "record": resign(t.promises[first_draft].to_json(), med.signing, crypto.CTX_PROMISE),
            "error": "bad_signature",
        }
    )

    # checkpoints
    note = t.checkpoint()
    body_text, _, sig_block = note.partition("\n\n")
    lines = [line + "\n" for line in sig_block.splitlines()]
    sig = cp.NoteSignature.from_line(lines[0])
    bad = cp.NoteSignature(
        name=sig.name,
        key_id=sig.key_id,
        sig_bytes=bytes([sig.sig_bytes[0] ^ 1]) + sig.sig_bytes[1:],
    )
    cases.append(
        {
            "name": "checkpoint/tampered-log-signature",
            "check": "checkpoint",
            "note": cp.format_note((body_text + "\n").encode(), [bad.line(), *lines[1:]]).decode(),
            "error": "bad_checkpoint",
        }
    )
    cases.append(
        {
            "name": "checkpoint/missing-quorum",
            "check": "checkpoint",
            "note": cp.format_note((body_text + "\n").encode(), lines[:3]).decode(),
            "error": "no_quorum",
        }
    )
    cases.append(
        {
            "name": "checkpoint/unsigned-by-log",
            "check": "checkpoint",
            "note": cp.format_note((body_text + "\n").encode(), lines[1:]).decode(),
            "error": "bad_checkpoint",
        }
    )
    return cases


def _evidence_cases(t: Talks, bundle: JSONValue) -> list[Case]:
    other_talks = b64e(crypto.sha256(b"other talks"))
    receipts = bundle["receipts"]
    proof_len = len(bundle["draft"]["proof"])
    flipped_proof = bundle["draft"]["proof"][0]
    flipped_proof = ("B" if flipped_proof[0] == "A" else "A") + flipped_proof[1:]
    ct = bundle["ciphertext"]
    ct_altered = ct[:20] + ("B" if ct[20] == "A" else "A") + ct[21:]
    na_id = b64e(t.people["na"].device.device_id)
    d2_receipt = next(  # na's receipt for the second draft
        i
        for i, e in enumerate(t.entries)
        if parse(e)["t"] == "receipt" and parse(e)["device"] == na_id
    )
    assert parse(t.entries[d2_receipt])["t"] == "receipt"
    foreign = t.proven(d2_receipt, t.tree.size).to_json()
    # The last roster change before the draft (later ones, such as a revocation, are
    # shown when the bundle has them; see docs/PROTOCOL.md section 5a).
    last_before_draft = max(
        i for i, r in enumerate(bundle["roster"]) if r["index"] < bundle["draft"]["index"]
    )
    note = bundle["checkpoint"]
    body_text, _, sig_block = note.partition("\n\n")
    sig_lines = sig_block.splitlines()
    log_sig = sig_lines[0]
    tampered_log_sig = log_sig[:-6] + ("A" if log_sig[-6] != "A" else "B") + log_sig[-5:]
    patches: list[tuple[str, list[Any], str, str | None]] = [
        ("evidence/wrong-pinned-talks", [], "1", other_talks),
        ("evidence/dropped-roster-change", [["delete", ["roster", 2]]], "2", None),
        ("evidence/reordered-roster", [["swap", ["roster", 2], ["roster", 3]]], "2", None),
        (
            "evidence/truncated-roster",
            [
                ["delete", ["roster", i]]
                for i in range(len(bundle["roster"]) - 1, last_before_draft - 1, -1)
            ],
            "5",
            None,
        ),
        (
            "evidence/altered-draft",
            [["set", ["draft", "entry", "time"], bundle["draft"]["entry"]["time"] + 1]],
            "4",
            None,
        ),
        ("evidence/altered-ciphertext", [["set", ["ciphertext"], ct_altered]], "6", None),
        (
            "evidence/wrong-content-key",
            [["set", ["content_key"], b64e(crypto.sha256(b"wrong key"))]],
            "6",
            None,
        ),
        (
            "evidence/receipt-from-another-draft",
            [["set", ["receipts", len(receipts)], foreign]],
            "7",
            None,
        ),
        (
            "evidence/tampered-inclusion-proof",
            [["set", ["draft", "proof", 0], flipped_proof]],
            "4",
            None,
        ),
        (
            "evidence/short-inclusion-proof",
            [["delete", ["draft", "proof", proof_len - 1]]],
            "4",
            None,
        ),
        (
            "evidence/tampered-checkpoint-signature",
            [
                [
                    "set",
                    ["checkpoint"],
                    "\n".join([body_text, "", tampered_log_sig, *sig_lines[1:]]) + "\n",
                ]
            ],
            "3",
            None,
        ),
        (
            "evidence/missing-quorum",
            [["set", ["checkpoint"], "\n".join([body_text, "", *sig_lines[:3]]) + "\n"]],
            "3",
            None,
        ),
        ("evidence/genesis-not-at-zero", [["set", ["genesis", "index"], 1]], "1", None),
    ]
    return [
        {
            "name": name,
            "check": "evidence",
            "patch": patch,
            "step": step,
            "error": "bad_evidence",
            **({"pinned": pinned} if pinned else {}),
        }
        for name, patch, step, pinned in patches
    ]


def build() -> dict[str, Any]:
    t = scenario()
    note = t.checkpoint()
    checkpoint, signed = cp.open_checkpoint(
        note.encode(),
        origin=t.genesis.origin,
        log_name=t.genesis.log_name,
        log_key=t.genesis.log_key,
    )
    first_draft = sorted(t.sent)[0]
    receipt_indices = [
        i
        for i in range(first_draft + 1, len(t.entries))
        if parse(t.entries[i]).get("entry") == b64e(t.sent[first_draft].leaf)
    ]
    bundle = t.evidence(t.sent[first_draft], receipt_indices, note=note)
    bundle_json = parse(bundle.to_bytes(), max_size=1 << 24)
    return {
        "about": (
            "Docket known-answer vectors for signed records, the ledger, drafts, receipts, "
            "promises, checkpoints and evidence. Generated by tests/vectors/gen_records.py "
            "from the seed 'vectors/records'; do not edit. Bytes are unpadded base64url. "
            "Negative cases are named <record>/<mutation> and give the error code."
        ),
        "seed": SEED,
        "log_key": {"seed": b64e(t.log_key.seed_bytes()), "public": b64e(t.log_key.public_bytes())},
        "devices": _devices(t),
        "genesis": {
            "entry": _entry(t.entries[0]),
            "talks_id": b64e(t.talks_id),
            "fingerprint": t.genesis.fingerprint,
            "origin": t.genesis.origin,
        },
        "log": _log(t),
        "tree": {"size": t.tree.size, "root": b64e(t.tree.root())},
        "drafts": _drafts(t),
        "promises": [p.to_json() for p in t.promises],
        "checkpoint": {
            "note": note,
            "size": checkpoint.size,
            "root": b64e(checkpoint.root),
            "signatures": len(signed.signatures),
            "witnesses": sorted(t.roster.witnesses()),
        },
        "evidence": {
            "bundle": bundle_json,
            "report": _report(t, bundle.to_bytes()),
        },
        "negative": _negative(t) + _evidence_cases(t, bundle_json),
    }


def render() -> str:
    """The exact text of ``records.json``."""
    return json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(OUTPUT, render(), "tests.vectors.gen_records", argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
