"""The high-water file: ahead of every stored checkpoint, and never trusted unsigned.

In-process servers (the real app factory on a real SQLite file, tests/server/harness.py).
The end-to-end restore cases with real processes are in
tests/faults/test_backup_restore.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from protocol import crypto
from protocol.checkpoint import Checkpoint, format_note, sign_checkpoint
from server.highwater import Mark, read_mark
from server.settings import ConfigError
from tests.server.harness import ORIGIN, Harness


async def test_every_published_checkpoint_is_in_the_high_water_file(
    tmp_path: Path, rng: crypto.Rng
) -> None:
    mark = tmp_path / "elsewhere" / "mark.json"
    async with Harness.start(tmp_path, rng, high_water=mark) as h:
        await h.standard_talks()
        cp, _, _ = await h.checkpoint()
        seen = read_mark(mark, origin=ORIGIN, log_public=h.init.log_key)
        # Written before the checkpoint is stored: never behind what a client saw.
        assert seen is not None and seen.size >= cp.size
        db = h.settings.db_path
    # After the final checkpoint at shutdown the mark is the latest stored checkpoint.
    conn = sqlite3.connect(db)
    try:
        size, note = conn.execute(
            "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    final = read_mark(mark, origin=ORIGIN, log_public=h.init.log_key)
    assert final is not None and (final.size, final.note) == (size, bytes(note))


def _forged_mark(path: Path, size: int, key: crypto.SigningKey) -> None:
    cp = Checkpoint(origin=ORIGIN, size=size, root=b"\x07" * 32)
    note = format_note(cp.body(), [sign_checkpoint(cp, ORIGIN, key)])
    path.write_bytes(Mark(origin=ORIGIN, size=size, root=cp.root, note=note).to_bytes())


async def test_high_water_file_signed_by_another_key_is_refused(
    tmp_path: Path, rng: crypto.Rng
) -> None:
    mark = tmp_path / "mark.json"
    _forged_mark(mark, 1000, crypto.SigningKey.generate(rng))
    with pytest.raises(ConfigError, match="must hold a checkpoint signed by this log's key"):
        async with Harness.start(tmp_path, rng, high_water=mark):
            pass


async def test_hand_edited_high_water_size_is_refused(tmp_path: Path, rng: crypto.Rng) -> None:
    mark = tmp_path / "mark.json"
    async with Harness.start(tmp_path, rng, high_water=mark) as h:
        await h.standard_talks()
        await h.checkpoint()
        init = h.init
    doc = json.loads(mark.read_text())
    doc["size"] += 1
    mark.write_text(json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n")
    with pytest.raises(ConfigError, match="is not valid"):
        async with Harness.start(tmp_path, rng, init=init, high_water=mark):
            pass


async def test_high_water_file_for_another_log_is_refused(tmp_path: Path, rng: crypto.Rng) -> None:
    mark = tmp_path / "mark.json"
    mark.write_bytes(
        Mark(origin="other.example/log", size=0, root=b"\x00" * 32, note=b"x").to_bytes()
    )
    with pytest.raises(ConfigError, match="give each log its own high-water file"):
        async with Harness.start(tmp_path, rng, high_water=mark):
            pass


async def test_high_water_file_inside_the_data_directory_is_refused(
    tmp_path: Path, rng: crypto.Rng
) -> None:
    with pytest.raises(ConfigError, match="inside the data directory"):
        async with Harness.start(tmp_path, rng, high_water=tmp_path / "data" / "mark.json"):
            pass


def test_mark_round_trips_through_its_file(tmp_path: Path) -> None:
    key = crypto.SigningKey(b"\x01" * 32)
    cp = Checkpoint(origin=ORIGIN, size=3, root=b"\x02" * 32)
    note = format_note(cp.body(), [sign_checkpoint(cp, ORIGIN, key)])
    mark = Mark(origin=ORIGIN, size=3, root=cp.root, note=note)
    (tmp_path / "mark.json").write_bytes(mark.to_bytes())
    assert read_mark(tmp_path / "mark.json", origin=ORIGIN, log_public=key.public_bytes()) == mark
    assert read_mark(tmp_path / "absent.json", origin=ORIGIN, log_public=key.public_bytes()) is None
