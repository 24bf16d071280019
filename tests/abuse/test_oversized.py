"""Oversized bodies: 413 ``too_large`` problem+json, with and without Content-Length
(chunked), on every body-taking route; nothing stored, no blob or upload left behind."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocol.crypto import Rng
from protocol.encoding import canonical
from protocol.envelope import MAX_META, encode_upload
from tests.faults.counters import bump
from tests.server.harness import Harness

MAX_BODY = 4096
MAX_DRAFT = 8192

JSON_ROUTES = {
    # path: who calls it (None: unauthenticated)
    "/v1/talks": None,
    "/v1/auth/challenge": None,
    "/v1/auth/token": None,
    "/v1/invitations": "med",
    "/v1/invitations/AAAAAAAAAAAAAAAAAAAAAA/accept": None,
    "/v1/roster": "med",
    "/v1/receipts": "s-adv",
    "/v1/log/cosignatures": "n-head",
}


@pytest.fixture
async def small(tmp_path: Path, rng: Rng) -> AsyncIterator[Harness]:
    async with Harness.start(tmp_path, rng, max_body=MAX_BODY, max_draft=MAX_DRAFT) as h:
        await h.standard_talks()
        for person in h.people.values():
            await h.token(person)
        yield h


async def _chunks(data: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _endless(prefix: bytes) -> AsyncIterator[bytes]:
    yield prefix
    for _ in range(1024):  # 64 MiB if nobody stops us
        yield b"\x00" * 65536


def _stored(h: Harness) -> tuple[dict[str, int], list[str], list[str]]:
    blobs = sorted(p.name for p in h.settings.blob_dir.iterdir() if p.is_file())
    tmp = sorted(p.name for p in (h.settings.blob_dir / "tmp").iterdir())
    return h.counts(), blobs, tmp


async def _expect(
    h: Harness, path: str, person: str | None, data: Any, status: int, code: str, **kw: Any
) -> None:
    headers = dict(kw.pop("headers", {}))
    if person is not None:
        headers["Authorization"] = f"Bearer {await h.token(h.people[person])}"
    bump("bad inputs tried")
    try:
        resp = await h.session.post(h.base + path, data=data, headers=headers, **kw)
        body = await resp.read()
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
        # The server answered early and closed while we were still sending: fine, as
        # long as it stored nothing (checked by the caller).
        return
    if resp.status == 500:
        bump("500s seen")
    assert (resp.status, resp.content_type) == (status, "application/problem+json"), body[:300]
    problem = await resp.json()
    assert problem["code"] == code, problem


@pytest.mark.parametrize("path", sorted(JSON_ROUTES))
async def test_json_bodies_over_max_body(small: Harness, path: str) -> None:
    h = small
    person = JSON_ROUTES[path]
    before = _stored(h)
    big = canonical({"x": "a" * MAX_BODY})
    json_headers = {"Content-Type": "application/json"}
    await _expect(h, path, person, big, 413, "too_large", headers=json_headers)
    await _expect(h, path, person, _chunks(big), 413, "too_large", headers=json_headers)
    # An endless chunked body is cut off at max_body, not read to its end.
    await _expect(h, path, person, _endless(big), 413, "too_large", headers=json_headers)
    assert _stored(h) == before


async def test_uploads_over_max_draft(small: Harness) -> None:
    h = small
    sender = h.people["n-adv"]
    before = _stored(h)
    octets = {"Content-Type": "application/octet-stream"}
    # A declared length beyond any draft is refused unread.
    huge = b"\x00" * (4 + MAX_META + MAX_DRAFT + 1)
    await _expect(h, "/v1/drafts", "n-adv", huge, 413, "too_large", headers=octets)
    # A meta part longer than any header.
    meta_len = struct.pack(">I", MAX_META + 1)
    await _expect(h, "/v1/drafts", "n-adv", meta_len + b"{}", 413, "too_large", headers=octets)
    await _expect(h, "/v1/drafts", "n-adv", _endless(meta_len), 413, "too_large", headers=octets)
    # An honestly sealed draft over the limit, with Content-Length and chunked.
    sealed = h.seal(sender, "plenary", "y" * (MAX_DRAFT + 100))
    sender.counter -= 1
    upload = encode_upload(sealed)
    await _expect(h, "/v1/drafts", "n-adv", upload, 413, "too_large", headers=octets)
    await _expect(h, "/v1/drafts", "n-adv", _chunks(upload), 413, "too_large", headers=octets)
    assert _stored(h) == before


async def test_upload_longer_than_its_header_says(small: Harness) -> None:
    h = small
    sender = h.people["n-adv"]
    before = _stored(h)
    octets = {"Content-Type": "application/octet-stream"}
    sealed = h.seal(sender, "plenary", "small")
    sender.counter -= 1
    upload = encode_upload(sealed)
    # More bytes than the signed ct_len: a ciphertext mismatch, found at ct_len + 1.
    await _expect(
        h,
        "/v1/drafts",
        "n-adv",
        _chunks(upload + b"\x00" * 100),
        422,
        "ciphertext_mismatch",
        headers=octets,
    )
    await _expect(
        h, "/v1/drafts", "n-adv", _endless(upload), 422, "ciphertext_mismatch", headers=octets
    )
    assert _stored(h) == before
    # The honest upload still goes through afterwards.
    resp = await h.post_draft(sender, h.seal(sender, "plenary", "small"))
    assert resp.status == 200
