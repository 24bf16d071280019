"""Damage found before the first request: each is refused at start-up with a clear message.

* a flipped header page (the first page of ``docket.db``: the SQLite header and the
  schema root);
* a truncated database file (the tail of the file gone, as after a failed copy);
* a deleted hot WAL (the server was killed with committed transactions still only in
  ``docket.db-wal``, and the WAL was then removed: acknowledged entries are gone).

"Refused" is either of the two ways the server can say so: it exits non-zero with one
``docket-server: ...`` line naming the problem (no traceback), or it starts read-only,
says so on ``/healthz`` and in one ``going read-only`` log line, and refuses writes with
``503 read_only``.  Never a server that goes on writing over the damage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from protocol.receipt import Promise
from tests.faults.counters import bump
from tests.faults.procs import ServerExited, serving, start
from tests.faults.workload import Template, build_template, login_all


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("startup-damage-template"))


async def _refused_at_start(template: Template, data: Path, *words: str) -> str:
    """Start the server on ``data``; assert it refuses; the message it gave."""
    try:
        served = await start(data)
    except ServerExited as exc:
        assert exc.returncode not in (0, None)
        assert "Traceback" not in exc.stderr
        last = exc.stderr.strip().splitlines()[-1]
        assert last.startswith("docket-server: "), exc.stderr
        message = last
    else:
        try:
            async with template.attach(served.url, data, "damaged") as h:
                health = await h.ok("GET", "/healthz")
                assert health["read_only"] is True, served.stderr()
                resp = await h.session.post(h.base + "/v1/drafts", data=b"\0\0\0\0")
                assert resp.status in (401, 503), await resp.text()
                assert resp.status != 500
        finally:
            await served.kill()
        lines = [line for line in served.stderr().splitlines() if "going read-only" in line]
        assert len(lines) == 1, served.stderr()
        message = lines[0]
    assert any(word in message for word in words), message
    return message


async def test_flipped_header_page_is_refused_at_start(template: Template, tmp_path: Path) -> None:
    data = template.clone(tmp_path / "data")
    db = data / "docket.db"
    raw = bytearray(db.read_bytes())
    page_size = int.from_bytes(raw[16:18], "big") or 65536
    for i in range(page_size):  # every bit of page 1 flipped
        raw[i] ^= 0xFF
    db.write_bytes(bytes(raw))
    bump("faults injected")
    await _refused_at_start(template, data, "not a database", "malformed", "damaged")


async def test_truncated_database_file_is_refused_at_start(
    template: Template, tmp_path: Path
) -> None:
    data = template.clone(tmp_path / "data")
    db = data / "docket.db"
    size = db.stat().st_size
    page_size = int.from_bytes(db.read_bytes()[16:18], "big") or 65536
    os.truncate(db, (size // page_size // 2) * page_size)
    bump("faults injected")
    await _refused_at_start(template, data, "malformed", "damaged", "truncated", "self-check")


async def test_deleted_hot_wal_is_refused_at_start(template: Template, tmp_path: Path) -> None:
    data = template.clone(tmp_path / "data")
    acked: list[Promise] = []
    async with serving(data) as served:
        async with template.attach(served.url, data, "hot-wal") as h:
            await login_all(h)
            sender = h.people["n-adv"]
            for i in range(5):
                resp = await h.post_draft(sender, h.seal(sender, "plenary", f"in the WAL {i}"))
                assert resp.status == 200, await resp.text()
                acked.append(Promise.from_json(json.loads(await resp.read())["promise"]))
        await served.kill()  # SIGKILL: the WAL is hot (not folded into docket.db)
    wal = data / "docket.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    wal.unlink()
    bump("faults injected")
    await _refused_at_start(template, data, "write-ahead log", "WAL", "rollback", "checkpoint")
