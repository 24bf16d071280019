"""`docket audit` catches tampering made directly in the server's SQLite file.

One real server runs a small round of talks (through the CLI), then stops.  Each test
copies its data directory, edits the copy's ``docket.db`` the way a compromised
operator would, serves the copy, and runs the auditor's CLI from a copy of the
observer's home, or exports it with ``docket-server export`` and audits the export
offline.  The audit must fail and name the index and the reason.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from protocol import crypto
from protocol.encoding import b64e, canonical, parse
from protocol.keys import DeviceKeys
from protocol.records import sign_record
from tests.client.conftest import PASSPHRASE
from tests.client.serverproc import ServerProc, serve_existing, start_server
from tests.client.test_e2e import cli, ok


@dataclass
class Round:
    base: Path
    data: Path
    homes: dict[str, Path]
    fingerprint: str


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Round]:
    """Talks with two delegations, drafts, receipts and an acknowledgement; a clean
    audit; then the server is stopped so tests can copy its store."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKET_KDF", "fast")
    mp.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    mp.delenv("DOCKET_HOME", raising=False)
    base = tmp_path_factory.mktemp("tamper")
    server = start_server(base / "server")
    try:
        homes = {m: base / "homes" / m for m in ("med", "nh", "sh", "obs")}
        founded = ok(
            cli(homes["med"], "--server", server.url, "talks", "found", "--token", server.token,
                "--log-key", server.log_key, "--origin", server.origin, "--title", "T",
                "--member", "med", "--name", "Mediator", "--quorum", "3", "--rule", "count",
                "--no-fresh-quorum")
        )  # fmt: skip
        fingerprint = founded["fingerprint"]

        def join(inviter: str, member: str, *args: str) -> str:
            code = ok(cli(homes[inviter], "invite", member, *args))["code"]
            joined = ok(cli(homes[member], "join", code, "--name", member, "--talks", fingerprint))
            return str(joined["fingerprint"])

        for head, delegation in (("nh", "north"), ("sh", "south")):
            fp = join("med", head, "--role", "head", "--delegation", delegation)
            ok(cli(homes["med"], "delegation", "create", delegation, "--name", delegation,
                   "--head", head, "--fingerprint", fp))  # fmt: skip
        join("med", "obs", "--role", "auditor")
        ok(cli(homes["med"], "enrol", "obs"))
        ok(cli(homes["med"], "channel", "create", "plenary", "--name", "Plenary", "--kind",
               "plenary", "--delegation", "north", "--delegation", "south",
               "--member", "med"))  # fmt: skip
        ok(cli(homes["nh"], "send", "plenary", "--text", "Art. 1. Ceasefire at 00:00."))
        ok(cli(homes["sh"], "send", "plenary", "--text", "Art. 1. Ceasefire at 06:00."))
        for member in ("med", "nh", "sh"):
            ok(cli(homes[member], "inbox"))
        for member in ("med", "nh", "sh"):
            ok(cli(homes[member], "log", "--limit", "0"))
        audit = ok(cli(homes["obs"], "audit"))
        assert audit["ok"] is True
    finally:
        server.stop()
        mp.undo()
    yield Round(base=base, data=base / "server", homes=homes, fingerprint=fingerprint)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("DOCKET_KDF", "fast")


def _rows(db: Path) -> list[tuple[int, str, bytes]]:
    with sqlite3.connect(db) as conn:
        return [
            (int(i), str(k), bytes(b))
            for i, k, b in conn.execute("SELECT idx, kind, body FROM entries ORDER BY idx")
        ]


def _set_body(conn: sqlite3.Connection, index: int, body: bytes) -> None:
    conn.execute("UPDATE entries SET body = ? WHERE idx = ?", (body, index))


def _first(rows: list[tuple[int, str, bytes]], kind: str, op: str | None = None) -> int:
    for index, k, body in rows:
        if k == kind and (op is None or parse(body).get("op") == op):
            return index
    raise AssertionError(f"no {kind} entry")


def _tampered_copy(
    played: Round, tmp_path: Path, tamper: Callable[[sqlite3.Connection, list[Any]], int]
) -> tuple[Path, int]:
    """A copy of the stopped server's data directory with ``tamper`` applied."""
    data = tmp_path / "server"
    shutil.copytree(played.data, data)
    (data / "server.lock").unlink(missing_ok=True)
    db = data / "docket.db"
    rows = _rows(db)
    with sqlite3.connect(db) as conn:
        index = tamper(conn, rows)
    return data, index


def _audit_tampered(
    played: Round, tmp_path: Path, tamper: Callable[[sqlite3.Connection, list[Any]], int]
) -> tuple[int, dict[str, Any]]:
    """Tamper with a copy of the store, export it as the operator would hand it over, and
    audit the export offline against the pinned fingerprint; return (index, report)."""
    data, index = _tampered_copy(played, tmp_path, tamper)
    export = tmp_path / "log.jsonl"
    subprocess.run(
        [sys.executable, "-m", "server.cli", "export", "--data", str(data), "--out", str(export)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = cli(None, "audit", "--log", str(export), "--talks", played.fingerprint)
    assert result.code == 1, (result.code, result.err, result.out)
    report = result.data
    assert report is not None and report.get("ok") is False, (report, result.err)
    return index, report


def test_tampered_store_served_fails_the_online_audit(played: Round, tmp_path: Path) -> None:
    """Served by the server itself, a tampered store is caught twice: the server's
    start-up check goes read-only and serves only the entries before the damage, and the
    observer's audit reports the log ending early exactly there."""

    def tamper(conn: sqlite3.Connection, rows: list[Any]) -> int:
        index = _first(rows, "receipt")
        obj = parse(rows[index][2])
        obj["time"] += 1
        _set_body(conn, index, canonical(obj))
        return index

    data, index = _tampered_copy(played, tmp_path, tamper)
    home = tmp_path / "obs"
    shutil.copytree(played.homes["obs"], home)
    server: ServerProc = serve_existing(data)
    try:
        result = cli(home, "--server", server.url, "audit")
    finally:
        server.stop()
    assert result.code == 1, (result.code, result.err)
    assert result.data["ok"] is False
    # Whichever catches it first: the server refusing to serve past the damage, or the
    # auditor verifying the entry it was served.
    assert {a["code"] for a in result.data["alarms"] if a["index"] == index} & {
        "log_truncated",
        "bad_signature",
    }


def _alarm_at(report: dict[str, Any], index: int) -> set[str]:
    """Codes of the alarms at ``index``."""
    return {a["code"] for a in report["alarms"] if a.get("index") == index}


def test_altered_envelope_is_caught(played: Round, tmp_path: Path) -> None:
    def tamper(conn: sqlite3.Connection, rows: list[Any]) -> int:
        index = _first(rows, "draft")
        obj = parse(rows[index][2])
        obj["time"] += 1
        _set_body(conn, index, canonical(obj))
        return index

    index, report = _audit_tampered(played, tmp_path, tamper)
    assert "bad_signature" in _alarm_at(report, index)
    assert any(a["code"] == "root_mismatch" for a in report["alarms"])


def test_deleted_receipt_is_caught(played: Round, tmp_path: Path) -> None:
    def tamper(conn: sqlite3.Connection, rows: list[Any]) -> int:
        index = _first(rows, "receipt")
        conn.execute("DELETE FROM receipts WHERE idx = ?", (index,))
        conn.execute("DELETE FROM inbox WHERE idx = ?", (index,))
        conn.execute("DELETE FROM entries WHERE idx = ?", (index,))
        return index

    index, report = _audit_tampered(played, tmp_path, tamper)
    assert "gap" in _alarm_at(report, index)
    assert any(a["code"] == "root_mismatch" for a in report["alarms"])


def test_reordered_entries_are_caught(played: Round, tmp_path: Path) -> None:
    def tamper(conn: sqlite3.Connection, rows: list[Any]) -> int:
        first = _first(rows, "draft")
        second = _first(rows, "receipt")
        _set_body(conn, first, rows[second][2])
        _set_body(conn, second, rows[first][2])
        return first

    index, report = _audit_tampered(played, tmp_path, tamper)
    assert "receipt_mismatch" in _alarm_at(report, index), report["alarms"]
    assert any(a["code"] == "root_mismatch" for a in report["alarms"])


def test_added_roster_row_is_caught(played: Round, tmp_path: Path) -> None:
    """The operator turns a receipt into an enrolment of its own device, signed by a
    key of its own choosing (it has no head's key)."""

    def tamper(conn: sqlite3.Connection, rows: list[Any]) -> int:
        index = _first(rows, "receipt")
        intruder = DeviceKeys.generate(os.urandom)
        prev = max((i for i, k, _ in rows if k in ("roster", "channel") and i < index), default=0)
        body: dict[str, Any] = {
            "args": {
                "delegation": "north",
                "devices": [intruder.public.to_json()],
                "member": "intruder",
                "member_name": "Intruder",
            },
            "author": b64e(intruder.device_id),
            "op": "member.enrol",
            "prev": b64e(crypto.sha256(b"\x00" + rows[prev][2])),
            "seq": 99,
            "t": "roster",
            "talks": parse(rows[_first(rows, "draft")][2])["talks"],
            "time": 1,
            "v": 1,
        }
        signed = sign_record(intruder.signing, crypto.CTX_ROSTER, body)
        conn.execute("UPDATE entries SET kind = 'roster' WHERE idx = ?", (index,))
        _set_body(conn, index, canonical(signed))
        return index

    index, report = _audit_tampered(played, tmp_path, tamper)
    assert _alarm_at(report, index) & {"stale_roster", "unknown_device", "unauthorised_change"}
    assert any(a["code"] == "root_mismatch" for a in report["alarms"])


def test_replaced_key_is_caught(played: Round, tmp_path: Path) -> None:
    """The operator swaps the key a delegation was created with for one it controls."""

    def tamper(conn: sqlite3.Connection, rows: list[Any]) -> int:
        index = _first(rows, "roster", "delegation.create")
        obj = parse(rows[index][2])
        obj["args"]["devices"][0] = DeviceKeys.generate(os.urandom).public.to_json()
        _set_body(conn, index, canonical(obj))
        return index

    index, report = _audit_tampered(played, tmp_path, tamper)
    assert "bad_signature" in _alarm_at(report, index)
