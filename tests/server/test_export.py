"""``docket-server export``: the raw log for offline audit, exactly as stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.crypto import Rng
from protocol.encoding import canonical, parse
from protocol.merkle import leaf_hash
from server.cli import main
from tests.server.harness import ORIGIN, Harness


async def test_export_writes_every_entry_and_the_cosignable_checkpoints(
    tmp_path: Path, rng: Rng
) -> None:
    async with Harness.start(tmp_path, rng) as h:
        await h.standard_talks()
        await h.send(h.people["n-adv"], h.seal(h.people["n-adv"], "plenary", "text"))
        await h.checkpoint()
        size = h.require_ledger().size
        data = h.settings.data
        out = tmp_path / "log.jsonl"
        # The export reads a snapshot: it may run while the server serves.
        assert main(["export", "--data", str(data), "--out", str(out)]) == 0
    lines = out.read_bytes().splitlines()
    head = parse(lines[0])
    assert head == {"origin": ORIGIN, "t": "docket-log", "v": 1}
    entries = [parse(line) for line in lines[1:] if b'"entry"' in line[:9]]
    assert [e["index"] for e in entries] == list(range(size))
    assert bytes(leaf_hash(canonical(entries[0]["entry"]))) == bytes(h.require_ledger().talks)
    notes = [parse(line)["checkpoint"] for line in lines[1:] if line.startswith(b'{"checkpoint"')]
    assert notes and all(isinstance(n, str) and n.startswith(head["origin"] + "\n") for n in notes)
    # Never overwrites.
    assert main(["export", "--data", str(data), "--out", str(out)]) != 0


def test_export_refuses_a_directory_that_is_not_a_data_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a Docket data directory" in err
