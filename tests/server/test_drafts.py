"""The relay: streamed draft uploads, idempotency, downloads for recipients only."""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from pathlib import Path

import pytest

from protocol.crypto import Rng
from protocol.encoding import canonical, parse
from protocol.envelope import DraftHeader, SealedDraft, encode_upload, keys_from_json, open_draft
from protocol.receipt import Promise
from protocol.roster import ChangeArgs
from server.clock import now_ms
from server.services import relay as relay_module
from tests.server.harness import Harness


def stored_in_database(h: Harness) -> dict[int, bytes]:
    """The ciphertexts the database holds (small drafts), by log index."""
    conn = sqlite3.connect(f"file:{h.settings.db_path}?mode=ro", uri=True)
    try:
        return {int(i): bytes(d) for i, d in conn.execute("SELECT idx, data FROM ciphertexts")}
    finally:
        conn.close()


def blob_files(h: Harness) -> list[str]:
    root = h.settings.blob_dir
    return sorted(p.name for p in root.iterdir() if p.is_file()) + sorted(
        "tmp/" + p.name for p in (root / "tmp").iterdir()
    )


async def _status(h: Harness, sender_name: str, data: bytes) -> tuple[int, str]:
    resp = await h.request(
        "POST",
        "/v1/drafts",
        person=h.people[sender_name],
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    body = await resp.json()
    return resp.status, str(body.get("code", ""))


@pytest.mark.parametrize("stored_as", ["database", "file"])
async def test_recipients_fetch_and_open_a_draft(
    talks: Harness, stored_as: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if stored_as == "file":
        monkeypatch.setattr(relay_module, "DB_CIPHERTEXT_MAX", 0)
    h = talks
    sender = h.people["n-adv"]
    sealed = h.seal(sender, "north-med", "ceasefire verification, v1")
    promise = await h.send(sender, sealed)
    promise.verify(h.init.log_key)
    assert promise.leaf == sealed.header.leaf
    if stored_as == "file":
        assert blob_files(h) == [sealed.header.ct_hash.hex()]
        assert stored_in_database(h) == {}
    else:  # small ciphertexts are written with their entry, no file
        assert blob_files(h) == []
        assert stored_in_database(h) == {promise.index: sealed.ciphertext}
    ledger = h.require_ledger()
    for name in ("med", "n-head", "n-adv"):
        me = h.people[name]
        got = await h.ok("GET", f"/v1/drafts/{promise.index}", person=me)
        assert got["index"] == promise.index
        header = DraftHeader.from_json(got["header"])
        keys = keys_from_json(got["keys"])
        resp = await h.request("GET", f"/v1/drafts/{promise.index}/ciphertext", person=me)
        assert resp.status == 200
        assert resp.content_type == "application/octet-stream"
        ciphertext = await resp.read()
        _, sender_key = ledger.roster.device(header.sender)
        opened = open_draft(
            header,
            keys,
            ciphertext,
            me=me.keys,
            talks=ledger.talks,
            sender=sender_key,
            recipients=ledger.roster.channel_devices("north-med"),
        )
        assert opened.payload.body == "ceasefire verification, v1"


@pytest.mark.parametrize("reader", ["s-adv", "s-head", "aud", "obs"])
async def test_non_recipients_see_the_same_404_as_for_nothing(talks: Harness, reader: str) -> None:
    h = talks
    promise = await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "north-med", "secret"))
    person = h.people[reader]
    same = {"X-Request-Id": "probe"}  # each problem names its request id
    for suffix in ("", "/ciphertext"):
        path = f"/v1/drafts/{promise.index}{suffix}"
        resp = await h.request("GET", path, person=person, headers=same)
        missing = await h.request("GET", f"/v1/drafts/999999{suffix}", person=person, headers=same)
        assert resp.status == missing.status == 404
        assert (await resp.json()) == (await missing.json())


async def test_sending_as_another_device_is_forbidden(talks: Harness) -> None:
    h = talks
    sealed = h.seal(h.people["n-adv"], "north-med", "x")
    before = h.counts()
    assert await _status(h, "n-head", encode_upload(sealed)) == (403, "forbidden")
    assert h.counts() == before
    assert blob_files(h) == []


async def test_non_member_cannot_send_to_a_channel(talks: Harness) -> None:
    h = talks
    sealed = h.seal(h.people["s-adv"], "north-med", "x")
    before = h.counts()
    assert await _status(h, "s-adv", encode_upload(sealed)) == (403, "not_a_member")
    assert h.counts() == before
    assert blob_files(h) == []


def _tamper_ciphertext(sealed: SealedDraft, ciphertext: bytes) -> bytes:
    return encode_upload(
        SealedDraft(
            header=sealed.header,
            keys=sealed.keys,
            ciphertext=ciphertext,
            content_key=sealed.content_key,
        )
    )


@pytest.mark.parametrize("mutation", ["flipped-byte", "truncated", "extended"])
async def test_ciphertext_that_differs_from_the_header_is_refused(
    talks: Harness, mutation: str
) -> None:
    h = talks
    sender = h.people["n-adv"]
    sealed = h.seal(sender, "plenary", "text")
    ct = sealed.ciphertext
    bad = {
        "flipped-byte": ct[:-1] + bytes([ct[-1] ^ 1]),
        "truncated": ct[:-1],
        "extended": ct + b"\x00",
    }[mutation]
    before = h.counts()
    assert await _status(h, "n-adv", _tamper_ciphertext(sealed, bad)) == (
        422,
        "ciphertext_mismatch",
    )
    assert h.counts() == before
    assert blob_files(h) == []
    # The same draft with the right bytes is still accepted (nothing was consumed).
    await h.send(sender, sealed)


async def test_oversized_ciphertext_is_refused_before_upload(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng, max_draft=1000) as h:
        await h.standard_talks()
        sealed = h.seal(h.people["n-adv"], "plenary", "x" * 2000)
        before = h.counts()
        assert await _status(h, "n-adv", encode_upload(sealed)) == (413, "too_large")
        assert h.counts() == before
        assert blob_files(h) == []


async def test_identical_resubmission_returns_the_original_promise(talks: Harness) -> None:
    h = talks
    sender = h.people["n-adv"]
    sealed = h.seal(sender, "plenary", "text")
    first = await h.send(sender, sealed)
    before = h.counts()
    resp = await h.post_draft(sender, sealed)
    assert resp.status == 200
    again = Promise.from_json((await resp.json())["promise"])
    assert again.raw == first.raw
    assert h.counts() == before


async def test_conflicting_resubmission_is_a_duplicate(talks: Harness) -> None:
    h = talks
    sender = h.people["n-adv"]
    sealed = h.seal(sender, "plenary", "text")
    await h.send(sender, sealed)
    # Same sender and message id, other bytes.
    from protocol.envelope import Payload, seal

    ledger = h.require_ledger()
    other = seal(
        sender=sender.keys,
        talks=ledger.talks,
        channel="plenary",
        counter=sealed.header.counter,
        msg=sealed.header.msg,
        draft=sealed.header.draft,
        version=1,
        parents=(),
        roster=ledger.roster.head,
        recipients=ledger.roster.channel_devices("plenary"),
        payload=Payload(title="t", body="other text"),
        time=now_ms(),
        rng=h.rng,
    )
    before = h.counts()
    blobs = blob_files(h)
    assert await _status(h, "n-adv", encode_upload(other)) == (409, "duplicate")
    assert h.counts() == before
    assert blob_files(h) == blobs


async def test_concurrent_identical_uploads_log_once(talks: Harness) -> None:
    h = talks
    sender = h.people["n-adv"]
    sealed = h.seal(sender, "plenary", "raced")
    await h.token(sender)
    responses = await asyncio.gather(*(h.post_draft(sender, sealed) for _ in range(4)))
    promises = set()
    for resp in responses:
        assert resp.status == 200, await resp.text()
        promises.add(canonical((await resp.json())["promise"]))
    assert len(promises) == 1
    await h.sync()
    assert h.counts()["drafts"] == 1


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("counter-gap", 409, "bad_counter"),
        ("stale-roster", 409, "stale_roster"),
        ("old-time", 422, "bad_time"),
        ("future-time", 422, "bad_time"),
        ("unknown-channel", 409, "roster_conflict"),
        ("orphan-version", 422, "bad_lineage"),
    ],
)
async def test_drafts_the_ledger_refuses(talks: Harness, case: str, status: int, code: str) -> None:
    h = talks
    sender = h.people["n-adv"]
    if case == "counter-gap":
        sealed = h.seal(sender, "plenary", "x", counter=5)
    elif case == "stale-roster":
        sealed = h.seal(sender, "plenary", "x")
        await h.change(
            h.people["med"],
            "channel.create",
            ChangeArgs(channel="c9", name="C", kind="plenary", delegations=("north",)),
        )
    elif case == "old-time":
        sealed = h.seal(sender, "plenary", "x", time=now_ms() - 11 * 60_000)
    elif case == "future-time":
        sealed = h.seal(sender, "plenary", "x", time=now_ms() + 11 * 60_000)
    elif case == "unknown-channel":
        sealed = h.seal(sender, "plenary", "x")
        from protocol.envelope import Payload, seal

        ledger = h.require_ledger()
        sealed = seal(
            sender=sender.keys,
            talks=ledger.talks,
            channel="nowhere",
            counter=1,
            msg=sealed.header.msg,
            draft=sealed.header.draft,
            version=1,
            parents=(),
            roster=ledger.roster.head,
            recipients=ledger.roster.channel_devices("plenary"),
            payload=Payload(title="t", body="x"),
            time=now_ms(),
            rng=h.rng,
        )
    else:
        sealed = h.seal(sender, "plenary", "x", version=2, parents=[b"\x01" * 32])  # type: ignore[list-item]
    before = h.counts()
    assert await _status(h, "n-adv", encode_upload(sealed)) == (status, code)
    assert h.counts() == before
    assert blob_files(h) == []


async def test_lineage_of_versions(talks: Harness) -> None:
    h = talks
    v1 = h.seal(h.people["n-adv"], "plenary", "v1")
    p1 = await h.send(h.people["n-adv"], v1)
    v2 = h.seal(
        h.people["s-adv"], "plenary", "v2", draft=v1.header.draft, version=2, parents=[p1.leaf]
    )
    await h.send(h.people["s-adv"], v2)
    lineage = h.require_ledger().lineage(v1.header.draft)
    assert [s.header.version for s in lineage] == [1, 2]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("empty", 400, "malformed"),
        ("short-prefix", 400, "malformed"),
        ("meta-longer-than-body", 400, "malformed"),
        ("meta-over-limit", 413, "too_large"),
        ("meta-not-json", 400, "malformed"),
        ("meta-non-canonical", 400, "non_canonical"),
        ("meta-unknown-field", 422, "unknown_field"),
        ("meta-wrong-keys", 422, "ciphertext_mismatch"),
    ],
)
async def test_malformed_uploads(talks: Harness, case: str, status: int, code: str) -> None:
    h = talks
    sealed = h.seal(h.people["n-adv"], "plenary", "x")
    upload = encode_upload(sealed)
    (n,) = struct.unpack(">I", upload[:4])
    meta = parse(upload[4 : 4 + n])
    body = upload[4 + n :]

    def frame(meta_bytes: bytes) -> bytes:
        return struct.pack(">I", len(meta_bytes)) + meta_bytes + body

    data = {
        "empty": b"",
        "short-prefix": b"\x00\x00",
        "meta-longer-than-body": struct.pack(">I", n + 10_000) + upload[4:],
        "meta-over-limit": struct.pack(">I", 3 * 1024 * 1024) + upload[4:],
        "meta-not-json": frame(b"not json"),
        "meta-non-canonical": frame(canonical(meta) + b" "),
        "meta-unknown-field": frame(canonical({**meta, "x": 1})),
        "meta-wrong-keys": frame(canonical({**meta, "keys": {}})),
    }[case]
    before = h.counts()
    assert await _status(h, "n-adv", data) == (status, code)
    assert h.counts() == before
    assert blob_files(h) == []
