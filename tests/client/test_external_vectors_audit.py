"""The auditor's verdict on the Wycheproof and CCTV keys is the protocol's.

A careless (or hostile) server logs roster changes that enrol devices with every
distinct public key of the vectors, each properly signed by the delegation's head.  The
auditor must flag exactly those whose key the protocol calls weak (``weak_key`` at that
index) and replay the others as valid enrolments."""

from __future__ import annotations

from client.auditor import audit_log
from protocol import crypto
from protocol.encoding import b64e, canonical, parse
from protocol.errors import ProtocolError
from protocol.keys import DeviceKeys, DevicePublic
from protocol.records import sign_record
from protocol.rosterchange import ChangeArgs
from tests.client.log_builder import LogBuilder
from tests.helpers import make_rng
from tests.vectors.external import ed25519_cases, x25519_cases


def _is_weak(kind: str, key: bytes) -> bool:
    try:
        (crypto.check_signing_key if kind == "sign" else crypto.check_box_key)(key)
    except ProtocolError:
        return True
    return False


def test_auditor_flags_exactly_the_weak_vector_keys() -> None:
    rng = make_rng("external-vectors/audit")
    b = LogBuilder(rng)
    b.delegation("alpha", "a-head")
    head = b.keys["a-head"]
    keys = [("sign", k) for k in dict.fromkeys(c.public for c in ed25519_cases())]
    keys += [("enc", k) for k in dict.fromkeys(c.public for c in x25519_cases())]
    weak_at: list[int] = []
    for n, (field, key) in enumerate(keys):
        honest = DeviceKeys.generate(rng).public

        def enrol(device: DevicePublic, n: int = n) -> ChangeArgs:
            return ChangeArgs(
                delegation="alpha", member=f"v{n}", member_name=f"Vector {n}", devices=(device,)
            )

        if _is_weak(field, key):
            # No DevicePublic can hold a weak key: the server built the record by hand.
            change = b.make_change(head, "member.enrol", enrol(honest))
            obj = parse(change.raw)
            obj["args"]["devices"][0][field] = b64e(key)
            raw = canonical(sign_record(head.signing, crypto.CTX_ROSTER, obj))
            weak_at.append(len(b.entries))
            b.entries.append(raw)
            b.tree.append(raw)
            b.ledger.skip_entry()
            continue
        device = (
            DevicePublic(sign_pk=key, enc_pk=honest.enc_pk)
            if field == "sign"
            else DevicePublic(sign_pk=honest.sign_pk, enc_pk=key)
        )
        b.change("a-head", "member.enrol", enrol(device))
    assert len(weak_at) > 20 and len(keys) - len(weak_at) > 100
    report = audit_log(b.entries, pinned_talks=b.talks, checkpoints=[b.checkpoint()], workers=1)
    assert [(a.code, a.index) for a in report.alarms] == [("weak_key", i) for i in weak_at]
    assert report.entries["invalid"] == len(weak_at)
