"""Per-participant quotas: drafts and upload bytes per window, 429 with Retry-After.

A participant past its quota gets ``429 quota_exceeded`` with an integer
``Retry-After``, nothing of the refused upload is logged or left on disk, and other
participants are not affected.
"""

from __future__ import annotations

from pathlib import Path

from protocol.crypto import Rng
from tests.faults.counters import bump
from tests.server.harness import Harness


async def test_draft_quota_answers_429_with_retry_after(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng, quota_drafts=3, quota_window=600.0) as h:
        await h.standard_talks()
        adv = h.people["n-adv"]
        for i in range(3):
            await h.send(adv, h.seal(adv, "plenary", f"within the quota {i}"))
        before = h.counts()
        resp = await h.post_draft(adv, h.seal(adv, "plenary", "one too many"))
        body = await resp.json()
        bump("bad inputs tried")
        assert (resp.status, body["code"]) == (429, "quota_exceeded"), body
        retry = int(resp.headers["Retry-After"])
        assert 1 <= retry <= 600  # one draft's worth of the window: 200 s
        assert h.counts() == before
        # Another participant still sends.
        other = h.people["s-adv"]
        await h.send(other, h.seal(other, "plenary", "my own quota"))


async def test_byte_quota_cuts_an_upload_off_with_429(tmp_path: Path, rng: Rng) -> None:
    async with Harness.start(tmp_path, rng, quota_bytes=150_000, quota_window=600.0) as h:
        await h.standard_talks()
        adv = h.people["n-adv"]
        await h.send(adv, h.seal(adv, "plenary", "x" * 100_000))
        before = h.counts()
        blobs = sorted(p.name for p in h.settings.blob_dir.iterdir())
        resp = await h.post_draft(adv, h.seal(adv, "plenary", "y" * 100_000))
        body = await resp.json()
        bump("bad inputs tried")
        assert (resp.status, body["code"]) == (429, "quota_exceeded"), body
        assert int(resp.headers["Retry-After"]) >= 1
        assert h.counts() == before
        assert sorted(p.name for p in h.settings.blob_dir.iterdir()) == blobs
        tmp = h.settings.blob_dir / "tmp"
        assert not tmp.exists() or not list(tmp.iterdir())
        other = h.people["s-adv"]
        await h.send(other, h.seal(other, "plenary", "z" * 100_000))
