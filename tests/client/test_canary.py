"""No plaintext in any server artefact: a canary test over a whole exchange.

Unique random strings are put into every field Docket encrypts end to end: draft
titles, bodies, attachment file names and attachment bytes (:class:`Payload`, sealed by
the sender and opened only by recipients).  A full exchange then runs through the real
CLI and library against a real ``docket-server`` process with debug logging on, behind
a recording proxy that keeps every HTTP request and answer (lines, headers, bodies) and
every WebSocket frame.  Afterwards the database, its WAL and shared-memory files (while
the server runs and after it stopped), the blob store, the server's log output, the
client's debug log records, ``docket-server export``, every recorded byte on the wire,
and a backup taken while the server runs (:func:`backup_artefacts`) are
searched for each canary, raw and base64/base64url encoded at every alignment: zero hits.

What is public by design, and so *not* a secret canary here: display names of members
and devices (the roster's ``member_name``, the invitation acceptance's ``name``), the
talks title, channel ids and names, and delegation names.  They are signed into the
log in plaintext so every participant and auditor can check who is who.  One display
name carries a canary of its own as the positive control: it must be found in the
database, the export and on the wire, which shows the search sees those artefacts.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from client.api import DocketClient
from protocol.envelope import Payload
from tests.client.conftest import PASSPHRASE
from tests.client.serverproc import server_env, start_server
from tests.client.test_e2e import cli, ok
from tests.recording_proxy import RecordingProxy


def canary(tag: str) -> str:
    return f"{tag}{secrets.token_hex(12)}"


def needles(text: str) -> list[bytes]:
    """``text`` as raw UTF-8 and as every base64 and base64url rendering that any byte
    alignment produces (the characters that depend on ``text`` alone)."""
    raw = text.encode()
    out = [raw]
    for pad in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = enc(b"\x00" * pad + raw)
            # Skip the characters mixing in the padding before, and the last group.
            start = (pad * 8 + 5) // 6
            body = encoded[start : (len(raw) + pad) // 3 * 4 - 4]
            if len(body) >= 16:
                out.append(body)
    return out


def hits(artefacts: Iterable[tuple[str, bytes]], text: str) -> list[str]:
    found = []
    wanted = needles(text)
    for where, data in artefacts:
        if any(n in data for n in wanted):
            found.append(where)
    return found


def files_under(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        yield str(path.relative_to(root)), path.read_bytes()


def backup_artefacts(data: Path, out: Path) -> list[tuple[str, bytes]]:
    """A ``docket-server backup`` of ``data``, taken while the server runs: the archive
    itself and each file in it, for the search."""
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "backup.tar"
    subprocess.run(
        [sys.executable, "-m", "server.cli", "backup", "--data", str(data), "--out",
         str(archive)],
        capture_output=True,
        timeout=120,
        env=server_env(),
        check=True,
    )  # fmt: skip
    found = [("backup", archive.read_bytes())]
    with tarfile.open(archive, mode="r:") as tar:
        for member in tar.getmembers():
            fh = tar.extractfile(member)
            if fh is not None:
                found.append((f"backup/{member.name}", fh.read()))
    return found


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_plaintext_canary_reaches_any_server_artefact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKET_KDF", "fast")
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("DOCKET_HOME", raising=False)
    monkeypatch.setenv("DOCKET_LOG_LEVEL", "debug")
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    secret = {
        "title": canary("title"),
        "body": canary("body"),
        "file_name": canary("fname"),
        "file_data": canary("fdata"),
        "ws_title": canary("wstitle"),
        "ws_body": canary("wsbody"),
    }
    public_name = canary("name")
    server = start_server(tmp_path / "server")
    homes = {m: tmp_path / "homes" / m for m in ("med", "nh", "na", "sh")}
    try:
        with RecordingProxy(server.url) as proxy:
            founded = ok(cli(homes["med"], "--server", proxy.url, "talks", "found",
                             "--token", server.token, "--log-key", server.log_key,
                             "--origin", server.origin, "--title", "Canary talks",
                             "--member", "med", "--name", "The Mediator", "--quorum", "1",
                             "--rule", "count", "--no-fresh-quorum",
                             "--accept-single-witness"))  # fmt: skip

            def join(inviter: str, member: str, name: str, *args: str) -> str:
                code = ok(cli(homes[inviter], "invite", member, *args))["code"]
                joined = ok(cli(homes[member], "join", code, "--name", name, "--talks",
                                founded["fingerprint"]))  # fmt: skip
                return str(joined["fingerprint"])

            for head, delegation in (("nh", "north"), ("sh", "south")):
                fp = join("med", head, f"Head {head}", "--role", "head", "--delegation",
                          delegation)  # fmt: skip
                ok(cli(homes["med"], "delegation", "create", delegation, "--name",
                       f"Delegation {delegation}", "--head", head,
                       "--fingerprint", fp))  # fmt: skip
            fp = join("nh", "na", public_name)
            ok(cli(homes["nh"], "enrol", "na", "--fingerprint", fp))
            ok(cli(homes["med"], "channel", "create", "plenary", "--name", "Plenary", "--kind",
                   "plenary", "--delegation", "north", "--delegation", "south", "--member",
                   "med"))  # fmt: skip

            text = ok(cli(homes["na"], "send", "plenary", "--title", secret["title"],
                          "--text", secret["body"]))  # fmt: skip
            attachment = tmp_path / "outbox" / f"{secret['file_name']}.txt"
            attachment.parent.mkdir()
            # Over 64 KiB, so that its ciphertext goes to the blob store, not the database.
            filler = secrets.token_hex(100 * 1024)
            attachment.write_text(
                f"Annex: {secret['file_data']}\n{filler}\n{secret['file_data']}\n"
            )
            filed = ok(cli(homes["na"], "send", "plenary", str(attachment), "--title",
                           "Annex"))  # fmt: skip

            # The recipients fetch, open, acknowledge; one of them over the WebSocket,
            # where small drafts travel inline.
            for member in ("sh", "nh", "med"):
                inbox = ok(cli(homes[member], "inbox"))
                assert {text["index"], filed["index"]} <= {i["index"] for i in inbox["items"]}
            read = cli(homes["sh"], "read", str(text["index"]), as_json=False)
            assert read.code == 0 and secret["body"] in read.out  # it was really sent
            saved = tmp_path / "saved"
            ok(cli(homes["sh"], "read", str(filed["index"]), "--save", str(saved)))
            assert secret["file_data"] in "".join(
                p.read_text() for p in saved.rglob("*") if p.is_file()
            )
            ok(cli(homes["sh"], "ack", str(text["index"])))
            ok(cli(homes["sh"], "receipts", str(text["index"])))

            async def over_websocket() -> None:
                async with (
                    DocketClient(homes["sh"], passphrase=PASSPHRASE) as watcher,
                    DocketClient(homes["na"], passphrase=PASSPHRASE) as sender,
                ):
                    await watcher.inbox()

                    async def send_later() -> int:
                        await asyncio.sleep(0.3)
                        payload = Payload(title=secret["ws_title"], body=secret["ws_body"])
                        return (await sender.send("plenary", payload)).index

                    task = asyncio.create_task(send_later())
                    got = [item.index async for item in watcher.watch(count=1, timeout=15)]
                    assert got == [await task]

            asyncio.run(over_websocket())
            assert proxy.websockets >= 1
            for member in ("med", "nh", "sh"):
                ok(cli(homes[member], "log", "--limit", "0"))  # witnesses cosign
            audit = cli(homes["med"], "audit")
            assert audit.code == 0, audit.err
            wire = [(f"wire[{i}]", chunk) for i, chunk in enumerate(proxy.chunks())]

        data = server.data
        running = [(f"running/{n}", b) for n, b in files_under(data)]
        export = tmp_path / "export.jsonl"
        subprocess.run([sys.executable, "-m", "server.cli", "export", "--data", str(data),
                        "--out", str(export)], check=True, timeout=60, env=server_env(),
                       capture_output=True)  # fmt: skip
        backup = backup_artefacts(data, tmp_path / "backup")
    finally:
        server.stop()
        root.removeHandler(records)
        root.setLevel(old_level)
    stopped = [(f"stopped/{n}", b) for n, b in files_under(server.data)]
    logs = [("server output", "\n".join(server.output).encode())]
    client_log = [("client debug log", "\n".join(records.lines).encode())]
    artefacts: list[tuple[str, bytes]] = [
        *running, *stopped, *logs, *client_log, *wire, ("export", export.read_bytes()), *backup
    ]  # fmt: skip
    names = {name for name, _ in running}
    assert any(n.endswith("docket.db") for n in names), names
    assert any("blobs" in n for n in names), names
    assert any("DEBUG" in line for line in server.output), "server debug logging is off"

    for field, value in secret.items():
        assert hits(artefacts, value) == [], f"{field} leaked"
    # The positive control: public roster data is found where it is stored and sent.
    found = hits(artefacts, public_name)
    assert any(w.startswith(("running/docket.db", "stopped/docket.db")) for w in found), found
    assert "export" in found and any(w.startswith("wire[") for w in found), found
    assert any(w.startswith("backup/") and w.endswith(".db") for w in found), found


def test_the_search_finds_a_canary_however_it_is_encoded() -> None:
    """The search itself, so that zero hits above means no leak rather than a blind
    search: raw, and base64/base64url at each of the three byte alignments."""
    value = canary("probe")
    for prefix in (b"", b"x", b"xy"):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            blob = b"noise " + enc(prefix + value.encode() + b" tail") + b" noise"
            assert hits([("blob", blob)], value) == ["blob"]
    assert hits([("raw", b'{"title":"' + value.encode() + b'"}')], value) == ["raw"]
    assert hits([("other", b"nothing here " * 100)], value) == []
