"""The checkpoint key removed or changed while the server runs is noticed before the
next signature: the server goes read-only and says so, and signs nothing more."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from protocol.crypto import Rng, SigningKey
from protocol.encoding import b64e
from tests.faults.counters import bump
from tests.server.harness import Harness


def _signed(h: Harness) -> tuple[int, int]:
    """(checkpoints, entries) rows: every entry row carries a signed promise."""
    conn = sqlite3.connect(h.settings.db_path)
    try:
        checkpoints = int(conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0])
        entries = int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
        return checkpoints, entries
    finally:
        conn.close()


async def _refuses_to_sign(h: Harness, caplog: pytest.LogCaptureFixture, words: str) -> None:
    sender = h.people["n-adv"]
    await h.token(sender)
    before = _signed(h)
    with caplog.at_level(logging.CRITICAL):
        resp = await h.post_draft(sender, h.seal(sender, "plenary", "after the key went"))
        body = await resp.json()
    assert (resp.status, body["code"]) == (503, "read_only"), body
    assert words in body["detail"]
    health = await h.ok("GET", "/healthz")
    assert health["read_only"] is True
    lines = [r.getMessage() for r in caplog.records if "going read-only" in r.getMessage()]
    assert len(lines) == 1 and words in lines[0], lines
    assert _signed(h) == before  # no promise, no checkpoint
    await h.checkpoint()  # reads still work, and the old checkpoint still verifies


@pytest.mark.parametrize("how", ["removed", "changed"])
async def test_checkpoint_key_tampered_while_running_makes_the_server_read_only(
    tmp_path: Path, rng: Rng, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
        sender = h.people["n-adv"]
        await h.send(sender, h.seal(sender, "plenary", "signed with the right key"))
        await h.checkpoint()  # everything so far is covered
        key = h.settings.key_path
        if how == "removed":
            key.unlink()
        else:
            other = SigningKey.generate(rng)
            key.write_text(b64e(other.seed_bytes()) + "\n")
            os.chmod(key, 0o600)
        bump("faults injected")
        await _refuses_to_sign(h, caplog, how)


async def test_checkpoint_key_rewritten_unchanged_keeps_the_server_writable(
    tmp_path: Path, rng: Rng
) -> None:
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
        key = h.settings.key_path
        text = key.read_text()
        key.unlink()
        key.write_text(text)  # a new inode, the same key (e.g. restored from a copy)
        os.chmod(key, 0o600)
        sender = h.people["n-adv"]
        await h.send(sender, h.seal(sender, "plenary", "still signing"))
        assert (await h.ok("GET", "/healthz"))["read_only"] is False
