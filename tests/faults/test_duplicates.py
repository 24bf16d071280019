"""Duplicate submissions under retries stay idempotent: one entry, the same promise.

A client that lost an answer (a crash, a dropped connection) resends the very same
bytes, possibly several times at once, possibly after the server restarted.  Uploads
and receipt batches must both come back with the original promise and log nothing new.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from protocol.crypto import Rng
from protocol.encoding import canonical, parse
from protocol.envelope import SealedDraft
from protocol.receipt import Receipt
from server.services import relay as relay_module
from tests.server.harness import Harness, Person

COPIES = 10


async def _post_draft_copies(h: Harness, sender: Person, sealed: SealedDraft) -> set[bytes]:
    answers = await asyncio.gather(*(h.post_draft(sender, sealed) for _ in range(COPIES)))
    bodies = [await r.read() for r in answers]
    assert [r.status for r in answers] == [200] * COPIES, bodies[0][:300]
    return {canonical(parse(b)["promise"]) for b in bodies}


async def _post_receipt_copies(h: Harness, person: Person, receipts: list[Receipt]) -> set[bytes]:
    answers = await asyncio.gather(*(h.post_receipts(person, receipts) for _ in range(COPIES)))
    bodies = [await r.read() for r in answers]
    assert [r.status for r in answers] == [200] * COPIES, bodies[0][:300]
    return {canonical(parse(b)["promises"]) for b in bodies}


def _blobs(h: Harness) -> list[str]:
    return sorted(p.name for p in h.settings.blob_dir.iterdir() if p.is_file())


@pytest.mark.parametrize("stored_as", ["database", "file"])
async def test_same_upload_resent_concurrently_is_logged_once(
    talks: Harness, stored_as: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if stored_as == "file":  # the copies then share one blob file
        monkeypatch.setattr(relay_module, "DB_CIPHERTEXT_MAX", 0)
    h = talks
    sender = h.people["n-adv"]
    await h.token(sender)
    before = h.counts()
    sealed = h.seal(sender, "plenary", "sent ten times at once")
    promises = await _post_draft_copies(h, sender, sealed)
    assert len(promises) == 1
    after = h.counts()
    assert after["entries"] == before["entries"] + 1
    assert after["drafts"] == before["drafts"] + 1
    if stored_as == "file":
        assert _blobs(h) == [sealed.header.ct_hash.hex()]
        assert after["ciphertexts"] == before["ciphertexts"]
    else:
        assert _blobs(h) == []
        assert after["ciphertexts"] == before["ciphertexts"] + 1
    await h.sync()  # the log replays: no second entry for the message id


async def test_regression_resent_receipt_batch_got_409_instead_of_its_promise(
    talks: Harness,
) -> None:
    h = talks
    sender, me = h.people["n-adv"], h.people["s-adv"]
    drafts = []
    for i in range(2):
        sealed = h.seal(sender, "plenary", f"draft {i}")
        drafts.append((sealed, (await h.send(sender, sealed)).index))
    receipts = [h.receipt(me, sealed, index) for sealed, index in drafts]
    await h.token(me)
    before = h.counts()
    promises = await _post_receipt_copies(h, me, receipts)
    assert len(promises) == 1
    assert h.counts()["receipts"] == before["receipts"] + 2
    # A different receipt for the same draft is still a duplicate.
    again = h.receipt(me, drafts[0][0], drafts[0][1])
    assert again.leaf != receipts[0].leaf
    resp = await h.post_receipts(me, [again])
    assert (resp.status, (await resp.json())["code"]) == (409, "duplicate")
    # And a batch mixing a logged receipt with a new one is refused whole.
    resp = await h.post_receipts(me, [receipts[0], h.receipt(me, drafts[1][0], drafts[1][1])])
    assert resp.status == 409
    assert h.counts()["receipts"] == before["receipts"] + 2
    await h.sync()


async def test_resent_writes_after_a_restart_get_their_original_promises(
    tmp_path: Path, rng: Rng
) -> None:
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
        sender, me = h.people["n-adv"], h.people["s-adv"]
        sealed = h.seal(sender, "plenary", "before the restart")
        [draft_promise] = await _post_draft_copies(h, sender, sealed)
        index = parse(draft_promise)["index"]
        receipts = [h.receipt(me, sealed, index)]
        [receipt_promises] = await _post_receipt_copies(h, me, receipts)
    async with Harness.start(tmp_path, rng, init=h.init) as h2:
        h2.people, h2.genesis, h2.ledger = h.people, h.genesis, h.ledger
        before = h2.counts()
        assert await _post_draft_copies(h2, sender, sealed) == {draft_promise}
        assert await _post_receipt_copies(h2, me, receipts) == {receipt_promises}
        assert h2.counts() == before
