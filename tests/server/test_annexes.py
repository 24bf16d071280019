"""The annex routes on a real app and SQLite file: every refusal leaves nothing behind."""

from __future__ import annotations

import io
from typing import Any

from protocol import annex
from protocol.annex import AnnexSealer
from protocol.encoding import b64e
from tests.helpers import make_rng
from tests.server.harness import Harness, Person

CHUNK = annex.MIN_CHUNK


async def declare(h: Harness, who: Person, length: int) -> tuple[Any, str]:
    resp = await h.request(
        "POST", "/v1/annexes", person=who,
        body={"chunk": CHUNK, "chunks": annex.chunk_count(length, CHUNK), "length": length},
    )  # fmt: skip
    body = await resp.json()
    return resp, body.get("id", "")


def sealed_chunks(length: int, seed: str = "s") -> tuple[AnnexSealer, list[bytes]]:
    data = bytes(range(256)) * (length // 256 + 1)
    sealer = AnnexSealer(length=length, rng=make_rng(seed), chunk_size=CHUNK)
    plains = annex.read_chunks(io.BytesIO(data[:length]), length, CHUNK)
    return sealer, [sealer.seal(p) for p in plains]


async def put(h: Harness, who: Person, upload: str, index: int, data: bytes) -> Any:
    return await h.request(
        "PUT", f"/v1/annexes/{upload}/chunks/{index}", person=who, data=data,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip


async def code(resp: Any) -> str:
    return str((await resp.json())["code"])


async def test_an_annex_over_the_limit_is_refused(talks: Harness) -> None:
    before = talks.counts()
    resp, _ = await declare(talks, talks.people["n-adv"], talks.settings.max_annex + 1)
    assert (resp.status, await code(resp)) == (413, "too_large")
    assert talks.counts() == before


async def test_a_chunk_count_that_does_not_match_the_length_is_refused(talks: Harness) -> None:
    before = talks.counts()
    resp = await talks.request(
        "POST", "/v1/annexes", person=talks.people["n-adv"],
        body={"chunk": CHUNK, "chunks": 5, "length": CHUNK},
    )  # fmt: skip
    assert await code(resp) == "bad_value"
    assert talks.counts() == before


async def test_chunks_in_any_order_then_replayed_or_spliced(talks: Harness) -> None:
    h, adv = talks, talks.people["n-adv"]
    _, upload = await declare(h, adv, 2 * CHUNK + 3)
    _, chunks = sealed_chunks(2 * CHUNK + 3)
    _, other = sealed_chunks(2 * CHUNK + 3, "other")
    assert await code(await put(h, adv, upload, 3, chunks[2])) == "annex_state"  # no chunk 3
    assert await code(await put(h, adv, upload, 0, chunks[0][:-1])) == "bad_value"  # length
    later = await put(h, adv, upload, 1, chunks[1])  # chunks may arrive in any order
    assert (later.status, await later.json()) == (200, {"received": 1})
    ok = await put(h, adv, upload, 0, chunks[0])
    assert (ok.status, await ok.json()) == (200, {"received": 2})
    again = await put(h, adv, upload, 0, chunks[0])  # a retry of the same bytes
    assert (again.status, await again.json()) == (200, {"received": 2})
    before = h.counts()
    spliced = await put(h, adv, upload, 0, other[0])
    assert (spliced.status, await code(spliced)) == (409, "chunk_conflict")
    assert h.counts() == before


async def test_another_device_cannot_see_or_feed_an_upload(talks: Harness) -> None:
    h = talks
    _, upload = await declare(h, h.people["n-adv"], CHUNK)
    _, chunks = sealed_chunks(CHUNK)
    status = await h.request("GET", f"/v1/annexes/{upload}", person=h.people["s-adv"])
    assert (status.status, await code(status)) == (404, "not_found")
    before = h.counts()
    fed = await put(h, h.people["s-adv"], upload, 0, chunks[0])
    assert (fed.status, await code(fed)) == (404, "not_found")
    assert h.counts() == before


async def test_finish_checks_every_chunk_and_the_hash(talks: Harness) -> None:
    h, adv = talks, talks.people["n-adv"]
    _, upload = await declare(h, adv, CHUNK + 1)
    sealer, chunks = sealed_chunks(CHUNK + 1)
    manifest = sealer.manifest()
    await put(h, adv, upload, 0, chunks[0])
    early = await h.request(
        "POST", f"/v1/annexes/{upload}/finish", person=adv, body={"hash": b64e(manifest.hash)}
    )
    assert await code(early) == "annex_state"
    await put(h, adv, upload, 1, chunks[1])
    wrong = await h.request(
        "POST", f"/v1/annexes/{upload}/finish", person=adv, body={"hash": b64e(bytes(32))}
    )
    assert (wrong.status, await code(wrong)) == (409, "annex_mismatch")
    right = await h.request(
        "POST", f"/v1/annexes/{upload}/finish", person=adv, body={"hash": b64e(manifest.hash)}
    )
    assert right.status == 200
    status = await h.ok("GET", f"/v1/annexes/{upload}", person=adv)
    assert status["hash"] == b64e(manifest.hash)
    assert sorted(status["hashes"]) == ["0", "1"]


async def test_an_annex_cannot_be_attached_to_someone_elses_draft(talks: Harness) -> None:
    h, adv = talks, talks.people["n-adv"]
    sealed = h.seal(h.people["s-adv"], "plenary", "theirs")
    promise = await h.send(h.people["s-adv"], sealed)
    _, upload = await declare(h, adv, 10)
    sealer, chunks = sealed_chunks(10)
    unfinished = await h.request(
        "POST", f"/v1/annexes/{upload}/attach", person=adv, body={"index": promise.index}
    )
    assert await code(unfinished) == "annex_state"
    await put(h, adv, upload, 0, chunks[0])
    await h.request(
        "POST", f"/v1/annexes/{upload}/finish", person=adv,
        body={"hash": b64e(sealer.manifest().hash)},
    )  # fmt: skip
    before = h.counts()
    stolen = await h.request(
        "POST", f"/v1/annexes/{upload}/attach", person=adv, body={"index": promise.index}
    )
    assert (stolen.status, await code(stolen)) == (404, "not_found")
    assert h.counts() == before
    pending = await h.request(
        "GET", f"/v1/drafts/{promise.index}/annex/0", person=h.people["n-adv"]
    )
    assert (pending.status, await code(pending)) == (404, "annex_pending")


async def test_unfinished_uploads_per_device_are_capped(talks: Harness) -> None:
    h, adv = talks, talks.people["n-adv"]
    for _ in range(h.settings.max_open_annexes):
        resp, _ = await declare(h, adv, 10)
        assert resp.status == 201
    before = h.counts()
    resp, _ = await declare(h, adv, 10)
    assert (resp.status, await code(resp)) == (429, "annex_limit")
    assert h.counts() == before
