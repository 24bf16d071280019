"""Numbered migrations: an older database is brought up to date and keeps its rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.storage import migrations
from server.storage.db import connect


def test_a_version_2_database_gains_the_ciphertexts_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connect(tmp_path / "d.db")
    with monkeypatch.context() as m:
        m.setattr(migrations, "LATEST", 2)
        assert migrations.migrate(conn) == 2
    conn.execute(
        "INSERT INTO entries (idx, kind, leaf, body, promise)"
        " VALUES (0, 'genesis', x'00', x'7b7d', x'7b7d')"
    )
    assert (
        conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'ciphertexts'").fetchone()[0]
        == 0
    )
    assert migrations.migrate(conn) == migrations.LATEST
    assert migrations.schema_version(conn) == migrations.LATEST
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM ciphertexts").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM annexes").fetchone()[0] == 0
    assert migrations.migrate(conn) == migrations.LATEST  # nothing left to do
    conn.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "d.db")
    migrations.migrate(conn)
    conn.execute("UPDATE schema_version SET version = ?", (migrations.LATEST + 1,))
    with pytest.raises(migrations.SchemaError, match="newer"):
        migrations.migrate(conn)
    conn.close()
