"""Backup, verify, restore and rollback protection against real server processes.

Every server here is ``python -m server.cli serve`` on loopback over a real SQLite file
(tests/faults/procs.py), and every backup, verify, restore and retire is the real
``docket-server`` command.  The attacks: an operator restoring a backup older than what
the log published (the server must not sign a conflicting checkpoint or hand out old
indices again), a naive ``cp`` of a running server's database without its WAL, and a
backup file that was tampered with.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from protocol.encoding import b64d
from protocol.merkle import MemoryTree
from tests.faults.procs import REPO, ServerExited, server_env, serving, start
from tests.faults.workload import Template, build_template, burst, fetch_entries, login_all

CLI_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("backup-template"))


async def cli(*args: str | Path) -> tuple[int, str, str]:
    """Run ``docket-server ARGS``; (status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        *map(str, args),
        cwd=REPO,
        env=server_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def backup(data: Path, out: Path, *extra: str) -> dict[str, object]:
    status, out_text, err = await cli("backup", "--data", data, "--out", out, "--json", *extra)
    assert status == 0, err
    assert "Traceback" not in err
    doc = json.loads(out_text)
    assert isinstance(doc, dict)
    return doc


async def health(template: Template, url: str, data: Path) -> dict[str, object]:
    async with template.attach(url, data, "health") as h:
        got = await h.ok("GET", "/healthz")
        assert isinstance(got, dict)
        return got


async def refused_write(template: Template, url: str, data: Path) -> tuple[int, str]:
    """Post a draft; (status, problem code)."""
    async with template.attach(url, data, "refused") as h:
        sender = h.people["n-adv"]
        resp = await h.post_draft(sender, h.seal(sender, "plenary", "after the restore"))
        body = await resp.json(content_type=None)
        return resp.status, str(body.get("code"))


async def test_backup_during_heavy_writes_passes_integrity_and_root_checks(
    template: Template, tmp_path: Path
) -> None:
    data = template.clone(tmp_path / "data")
    async with serving(data) as served, template.attach(served.url, data, "heavy") as h:
        await login_all(h)
        # One draft large enough to live under blobs/, so the backup must carry blobs.
        sender = h.people["s-adv"]
        await h.send(sender, h.seal(sender, "plenary", "x" * 100_000))
        files = [tmp_path / f"backup-{i}.tar" for i in range(3)]
        writes = asyncio.create_task(burst(h, template.seeded, drafts_per_sender=12, pace=0.01))
        manifests = []
        for out in files:
            manifests.append(await backup(data, out))
        outcome = await writes
        assert outcome.drafts, outcome.statuses
        entries = await fetch_entries(h)
    tree = MemoryTree.from_entries(entries)
    # The first backup was taken while the burst was still writing.
    assert int(str(manifests[0]["size"])) < len(entries)
    for out, manifest in zip(files, manifests, strict=True):
        status, text, err = await cli("verify-backup", out, "--json")
        assert status == 0, err
        assert json.loads(text)["size"] == manifest["size"]
        # The root in the manifest is the served log's root at that size.
        size = int(str(manifest["size"]))
        assert b64d(str(manifest["root"]), length=32) == tree.root(size)
        assert int(str(manifest["checkpoint_size"])) <= size
    # The newest restores and serves writable (nothing newer was published elsewhere).
    restored = tmp_path / "restored"
    status, _, err = await cli("restore", files[-1], "--data", restored)
    assert status == 0, err
    async with serving(restored) as served:
        got = await health(template, served.url, restored)
        assert got["read_only"] is False, served.stderr()
        assert got["size"] == manifests[-1]["size"]


async def test_stale_restore_is_refused_by_the_high_water_mark(
    template: Template, tmp_path: Path
) -> None:
    data = template.clone(tmp_path / "data")
    mark = tmp_path / "elsewhere" / "high-water.json"
    env = {"DOCKET_HIGH_WATER": str(mark)}
    old = tmp_path / "old.tar"
    async with serving(data, env=env) as served, template.attach(served.url, data, "hw") as h:
        await backup(data, old)
        await login_all(h)
        outcome = await burst(h, template.seeded, drafts_per_sender=3)
        assert outcome.drafts
        await h.checkpoint(max(p.index for p in outcome.promises) + 1)
        await served.stop()
    published = json.loads(mark.read_text())
    newer = tmp_path / "newer.tar"
    await backup(data, newer)

    stale = tmp_path / "stale"
    status, text, err = await cli("restore", old, "--data", stale)
    assert status == 0, err
    assert "stays read-only" in text
    async with serving(stale, env=env) as served:
        got = await health(template, served.url, stale)
        assert got["read_only"] is True
        assert got["code"] == "store_behind"
        reason = str(got["reason"])
        assert f"{published['size']} entries" in reason
        assert "naive copy" not in reason  # a restored backup is no copy without its WAL
        assert "docket-server restore" in reason and "docket-server retire" in reason
        assert await refused_write(template, served.url, stale) == (503, "store_behind")
        await served.stop()
    lines = [line for line in served.stderr().splitlines() if "going read-only" in line]
    assert len(lines) == 1 and "high-water" in lines[0], served.stderr()
    # Nothing was signed over the stale store, and the mark never went back.
    assert json.loads(mark.read_text()) == published

    # Bringing back the missing entries (a newer backup) makes the server writable again.
    fresh = tmp_path / "fresh"
    status, _, err = await cli("restore", newer, "--data", fresh)
    assert status == 0, err
    async with serving(fresh, env=env) as served:
        assert (await health(template, served.url, fresh))["read_only"] is False


async def test_retiring_a_stale_log_under_a_new_origin_starts_a_new_log(
    template: Template, tmp_path: Path
) -> None:
    data = template.clone(tmp_path / "data")
    mark = tmp_path / "elsewhere" / "high-water.json"
    env = {"DOCKET_HIGH_WATER": str(mark)}
    old = tmp_path / "old.tar"
    async with serving(data, env=env) as served, template.attach(served.url, data, "rt") as h:
        await backup(data, old)
        await login_all(h)
        outcome = await burst(h, template.seeded, drafts_per_sender=2)
        await h.checkpoint(max(p.index for p in outcome.promises) + 1)
    stale = tmp_path / "stale"
    assert (await cli("restore", old, "--data", stale))[0] == 0
    # The same origin may never sign again: retire refuses to reuse it.
    status, _, err = await cli(
        "retire", "--data", stale, "--new-origin", "docket.test/talks", "--high-water", mark
    )
    assert status == 2 and "must differ" in err
    status, text, err = await cli(
        "retire", "--data", stale, "--new-origin", "docket.test/talks-2", "--high-water", mark,
        "--json",
    )  # fmt: skip
    assert status == 0, err
    retired = json.loads(text)
    assert retired["origin"] == "docket.test/talks-2"
    assert retired["retired_origin"] == "docket.test/talks"
    archive = Path(retired["archive"])
    assert (archive / "docket.db").is_file() and not mark.exists()
    # The retired log stays readable for audit.
    status, _, err = await cli("export", "--data", archive, "--out", tmp_path / "retired.jsonl")
    assert status == 0, err
    async with serving(stale, env=env) as served:
        got = await health(template, served.url, stale)
        assert got == {"read_only": False, "size": 0, "status": "ok"}, served.stderr()


async def test_naive_copy_without_wal_is_detected(template: Template, tmp_path: Path) -> None:
    data = template.clone(tmp_path / "data")
    copy = tmp_path / "copy"
    async with serving(data) as served, template.attach(served.url, data, "naive") as h:
        await login_all(h)
        outcome = await burst(h, template.seeded, drafts_per_sender=2)
        await h.checkpoint(max(p.index for p in outcome.promises) + 1)
        # What `cp` of a running server's files gives: the database, without its WAL.
        assert (data / "docket.db-wal").stat().st_size > 0
        copy.mkdir(mode=0o700)
        for name in ("docket.db", "checkpoint.txt", "checkpoint.key"):
            shutil.copy2(data / name, copy / name)
        shutil.copytree(data / "blobs", copy / "blobs")
    async with serving(copy) as served:
        got = await health(template, served.url, copy)
        assert got["read_only"] is True and got["code"] == "store_behind"
        assert "no -wal file" in str(got["reason"]) and "naive copy" in str(got["reason"])
        assert await refused_write(template, served.url, copy) == (503, "store_behind")


async def test_missing_checkpoint_key_says_a_new_key_is_a_new_log(
    template: Template, tmp_path: Path
) -> None:
    data = template.clone(tmp_path / "data")
    (data / "checkpoint.key").unlink()
    with pytest.raises(ServerExited) as exc:
        await start(data)
    assert exc.value.returncode == 2
    last = exc.value.stderr.strip().splitlines()[-1]
    assert "the checkpoint key" in last and "is missing" in last
    assert "a new key means a new log identity" in last
    assert "not an initialised data directory" not in last


async def test_backup_without_key_restores_only_with_the_right_key(
    template: Template, tmp_path: Path
) -> None:
    out = tmp_path / "nokey.tar"
    status, _, err = await cli("backup", "--data", template.data, "--out", out, "--no-key")
    assert status == 0 and "warning: the backup holds no checkpoint key" in err
    with tarfile.open(out) as tar:
        assert "checkpoint.key" not in tar.getnames()
    other = tmp_path / "other.key"
    other.write_text("A" * 43 + "\n")
    status, _, err = await cli("restore", out, "--data", tmp_path / "a", "--key", other)
    assert status == 1 and "not this log's checkpoint key" in err
    assert not (tmp_path / "a").exists()
    status, _, err = await cli(
        "restore", out, "--data", tmp_path / "b", "--key", template.data / "checkpoint.key"
    )
    assert status == 0, err
    async with serving(tmp_path / "b") as served:
        assert (await health(template, served.url, tmp_path / "b"))["read_only"] is False


def _rewrite(src: Path, dest: Path, change: dict[str, bytes], extra: dict[str, bytes]) -> None:
    """Copy the tar ``src`` to ``dest`` replacing members' bytes and appending members."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for member in tin:
            fh = tin.extractfile(member)
            assert fh is not None
            body = change.get(member.name, fh.read())
            member.size = len(body)
            tout.addfile(member, io.BytesIO(body))
        for name, body in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tout.addfile(info, io.BytesIO(body))


async def test_tampered_backup_is_refused(template: Template, tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    await backup(template.data, good)
    with tarfile.open(good) as tar:
        fh = tar.extractfile("docket.db")
        assert fh is not None
        db = bytearray(fh.read())
    db[len(db) // 2] ^= 0x01
    cases = {
        "flipped": ({"docket.db": bytes(db)}, {}, "does not match its hash"),
        "path_traversal": ({}, {"../escape": b"x"}, "unexpected member"),
        "extra_blob": ({}, {"blobs/" + "0" * 64: b"x"}, "unexpected member"),
    }
    for name, (change, extra, message) in cases.items():
        bad = tmp_path / f"{name}.tar"
        _rewrite(good, bad, change, extra)
        status, _, err = await cli("verify-backup", bad)
        assert status == 1 and message in err, (name, err)
        assert "Traceback" not in err
        status, _, err = await cli("restore", bad, "--data", tmp_path / f"r-{name}")
        assert status == 1 and not (tmp_path / f"r-{name}").exists(), (name, err)
    (tmp_path / "truncated.tar").write_bytes(good.read_bytes()[:5000])
    status, _, err = await cli("verify-backup", tmp_path / "truncated.tar")
    assert status == 1 and "Traceback" not in err
