"""Local verified state: atomic commits, replay on load, tamper detection, alarms."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from client.errors import Alarm, StateError
from client.state import LocalState, StoredCheckpoint, VerifiedLog
from protocol.checkpoint import WitnessState
from tests.protocol.builders import standard


def _state_with_log(home: Path) -> tuple[LocalState, list[bytes]]:
    talks, _, _ = standard("client-state")
    state = LocalState(home)
    state.pin_genesis(talks.genesis)
    entries = talks.entries
    cp = StoredCheckpoint(size=len(entries), root=talks.tree.root(), note="note")
    state.commit_entries(1, entries[1:], cp)
    return state, entries


def test_replay_rebuilds_the_ledger(home: Path) -> None:
    state, entries = _state_with_log(home)
    log = state.load_log()
    assert log is not None
    assert log.size == len(entries)
    assert log.root() == state.checkpoint().root  # type: ignore[union-attr]
    assert set(log.ledger.roster.delegations) == {"north", "south"}
    assert log.roster_indices and all(
        log.kinds[i] in ("roster", "channel") for i in log.roster_indices
    )
    draft_index = log.kinds.index("draft")
    assert log.origins[draft_index].member == "na"


def test_state_file_is_private(home: Path) -> None:
    state, _ = _state_with_log(home)
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600


def test_tampered_entry_is_caught_on_load(home: Path) -> None:
    state, entries = _state_with_log(home)
    state.close()
    db = sqlite3.connect(home / "state.sqlite")
    data = bytearray(entries[3])
    data[-5] ^= 1
    db.execute("UPDATE entries SET data = ? WHERE idx = 3", (bytes(data),))
    db.commit()
    db.close()
    with pytest.raises(StateError, match="entry 3"):
        LocalState(home).load_log()


def test_missing_entry_is_caught_on_load(home: Path) -> None:
    state, _ = _state_with_log(home)
    state.close()
    db = sqlite3.connect(home / "state.sqlite")
    db.execute("DELETE FROM entries WHERE idx = 2")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="missing log entry 2"):
        LocalState(home).load_log()


def test_commit_refuses_a_moved_base(home: Path) -> None:
    state, entries = _state_with_log(home)
    cp = StoredCheckpoint(size=len(entries) + 1, root=b"\x00" * 32, note="n")
    with pytest.raises(StateError, match="changed while syncing"):
        state.commit_entries(3, [b"{}"], cp)
    # Nothing of the failed commit is visible.
    assert state.stored_size() == len(entries)
    assert state.checkpoint().size == len(entries)  # type: ignore[union-attr]


def test_transaction_rolls_back_on_error(home: Path) -> None:
    state = LocalState(home)
    with pytest.raises(RuntimeError), state.transaction():
        state.set("a", 1)
        raise RuntimeError("boom")
    assert state.get("a") is None


def test_other_genesis_is_a_key_change(home: Path) -> None:
    state, _ = _state_with_log(home)
    other, _, _ = standard("other talks")
    with pytest.raises(Alarm) as info:
        state.pin_genesis(other.genesis)
    assert info.value.name == "key_change"


def test_rollback_alarm_freezes(home: Path) -> None:
    state = LocalState(home)
    state.record_alarm(Alarm("duplicate", "x"))
    assert state.get("frozen") is None
    state.record_alarm(Alarm("rollback", "smaller log", index=4))
    assert state.get("frozen")["alarm"] == "rollback"
    assert [a.name for a in state.alarms()] == ["duplicate", "rollback"]
    assert state.alarms()[1].index == 4


def test_witness_state_persists(home: Path) -> None:
    state = LocalState(home)
    assert state.witness_state("o").size == 0
    state.set_witness_state(WitnessState(origin="o", size=3, root=b"\x01" * 32))
    state.close()
    assert LocalState(home).witness_state("o").size == 3


def test_draft_cache_round_trip(home: Path) -> None:
    state = LocalState(home)
    state.put_draft(7, keys={"k": "v"}, ciphertext=b"ct", status="opened", error=None)
    state.mark_draft(7, read=True, receipt="received")
    record = state.draft_record(7)
    assert record is not None
    assert (record.keys, record.ciphertext, record.read, record.receipt) == (
        {"k": "v"},
        b"ct",
        True,
        "received",
    )
    assert [r.index for r in state.draft_records()] == [7]


def test_verified_log_rejects_a_bad_entry() -> None:
    talks, _, _ = standard("client-log")
    log = VerifiedLog(talks.genesis)
    for data in talks.entries[1:4]:
        log.append(data)
    with pytest.raises(Exception) as info:
        log.append(talks.entries[5])  # skips entry 4: chaining breaks
    assert log.size == 4
    del info
