"""A damaged database page is detected at start: the server refuses writes and says why.

The server is stopped cleanly (the WAL folded into ``docket.db``), then bytes of one
page are overwritten: the page in the middle of the file, or a page of each table.  At
the next start ``PRAGMA quick_check`` (or the self-check) must find it: ``/healthz``
reports read-only, writes answer ``503 read_only``, one ``going read-only`` line names
the cause, and nothing is ever signed on top of the damage.  The answers a damaged page
still causes are 503 ``unavailable``, never a 500 or a traceback.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.faults.counters import bump
from tests.faults.procs import Served, ServerExited, start
from tests.faults.workload import Template, build_template

TABLES = ("entries", "nodes", "drafts", "receipts", "inbox", "checkpoints", "tokens", "meta")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("corrupt-template"))


def _pages(db: Path) -> tuple[int, dict[str, list[int]]]:
    """The page size and the pages of every table and index (from ``dbstat``)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        pages: dict[str, list[int]] = {}
        for name, pageno in conn.execute("SELECT name, pageno FROM dbstat ORDER BY pageno"):
            pages.setdefault(str(name), []).append(int(pageno))
        return page_size, pages
    finally:
        conn.close()


def _clobber(db: Path, page: int, page_size: int) -> None:
    """Overwrite the header and cell pointers of ``page`` (1-based), as a bad sector would."""
    offset = (page - 1) * page_size
    with db.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)


def _target(db: Path, where: str) -> int:
    page_size, pages = _pages(db)
    if where == "middle":
        total = db.stat().st_size // page_size
        return max(2, total // 2 + 1)
    owned = pages[where]
    return owned[len(owned) // 2]


@pytest.mark.parametrize("where", ["middle", *TABLES])
async def test_a_damaged_page_is_detected_at_start(
    template: Template, tmp_path: Path, where: str
) -> None:
    data = template.clone(tmp_path / "data")
    db = data / "docket.db"
    page_size, _ = _pages(db)
    page = _target(db, where)
    _clobber(db, page, page_size)
    bump("faults injected")
    try:
        served = await start(data)
    except ServerExited as exc:
        # Too damaged to start at all: a non-zero exit and one line saying why.
        assert exc.returncode not in (0, None)
        last = exc.stderr.strip().splitlines()[-1]
        assert last.startswith("docket-server: ") and "malformed" in last, exc.stderr
        assert "Traceback" not in exc.stderr
    else:
        try:
            await _refuses_writes(template, served, data, where)
        finally:
            await served.kill()
        lines = [line for line in served.stderr().splitlines() if "going read-only" in line]
        assert len(lines) == 1, served.stderr()
        assert "damaged" in lines[0] or "self-check" in lines[0], lines[0]
    # Nothing was signed or repaired on top of the damage.
    published = (template.data / "checkpoint.txt").read_bytes()
    assert (data / "checkpoint.txt").read_bytes() == published
    assert _quick_check(db) != ["ok"]


async def _refuses_writes(template: Template, served: Served, data: Path, where: str) -> None:
    async with template.attach(served.url, data, where) as h:
        health = await h.ok("GET", "/healthz")
        assert health["read_only"] is True, (where, served.stderr())
        sender = h.people["n-adv"]
        try:
            resp = await h.post_draft(sender, h.seal(sender, "plenary", "refused"))
            status, body = resp.status, await resp.read()
        except AssertionError as exc:  # the login itself was refused
            status, body = (503 if " 503 " in str(exc) else 0), str(exc).encode()
        assert status == 503, (where, status, body[:300])
        assert b"read_only" in body or b"unavailable" in body, body[:300]
        assert b"Traceback" not in body
        for path in ("/v1/talks", "/v1/inbox"):
            resp = await h.session.get(h.base + path)
            if resp.status == 500:
                bump("500s seen")
            assert resp.status != 500, (path, await resp.read())


def _quick_check(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()


async def test_regression_damaged_inbox_page_left_the_server_writable(
    template: Template, tmp_path: Path
) -> None:
    """Before the start-up ``quick_check`` a damaged page the self-check never reads
    (an inbox, drafts or receipts page, the middle of the file) went unnoticed and the
    server went on writing into the damaged file."""
    await test_a_damaged_page_is_detected_at_start(template, tmp_path, "inbox")
