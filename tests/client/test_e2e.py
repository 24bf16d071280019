"""End to end: the docket CLI and DocketClient against a real server on loopback.

One server and one set of talks serve the whole module (founded, invited, joined and
enrolled through the CLI itself); tests run in file order and the destructive ones
(removal, tampered state) come last and use participants nobody else needs.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from client.api import DocketClient
from client.cli import run
from client.errors import Alarm
from protocol.encoding import b64d, b64e
from protocol.envelope import Payload
from tests.client.conftest import PASSPHRASE
from tests.client.serverproc import ServerProc, start_server


@dataclass
class Result:
    code: int
    data: Any
    out: str
    err: str


def cli(home: Path | None, *args: str, as_json: bool = True) -> Result:
    """Run ``docket`` in-process, capturing output; parse the last JSON line."""
    argv = (["--home", str(home)] if home is not None else []) + (["--json"] if as_json else [])
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run([*argv, *args])
    text = out.getvalue()
    data = None
    if as_json and text.strip():
        data = json.loads(text.strip().splitlines()[-1])
    return Result(code, data, text, err.getvalue())


def ok(result: Result) -> Any:
    assert result.code == 0, result.err
    return result.data


@dataclass
class Talks:
    server: ServerProc
    homes: dict[str, Path]
    fingerprint: str
    talks: str
    device_fp: dict[str, str] = field(default_factory=dict)

    def home(self, member: str) -> Path:
        return self.homes[member]

    def witness_all(self) -> None:
        """The mediator and both heads sync (and so cosign) while the log is quiet."""
        for member in ("med", "nh", "sh"):
            ok(cli(self.home(member), "log", "--limit", "0"))


MEMBERS = ["med", "nh", "na", "nb", "sh", "sa", "obs"]


@pytest.fixture(scope="module")
def talks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Talks]:
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKET_KDF", "fast")
    mp.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    mp.delenv("DOCKET_HOME", raising=False)
    base = tmp_path_factory.mktemp("e2e")
    server = start_server(base / "server")
    try:
        homes = {m: base / "homes" / m for m in MEMBERS}
        founded = ok(
            cli(
                homes["med"],
                "--server", server.url,
                "talks", "found",
                "--token", server.token,
                "--log-key", server.log_key,
                "--origin", server.origin,
                "--title", "Talks on the river crossings",
                "--member", "med",
                "--name", "The Mediator",
                "--quorum", "3", "--rule", "count", "--no-fresh-quorum",
            )
        )  # fmt: skip
        t = Talks(server, homes, founded["fingerprint"], founded["talks"])

        def join(inviter: str, member: str, *invite_args: str) -> str:
            code = ok(cli(t.home(inviter), "invite", member, *invite_args))["code"]
            joined = ok(
                cli(t.home(member), "join", code, "--name", f"Person {member}", "--talks",
                    t.fingerprint)
            )  # fmt: skip
            t.device_fp[member] = joined["fingerprint"]
            return str(joined["fingerprint"])

        for head, delegation in (("nh", "north"), ("sh", "south")):
            fp = join("med", head, "--role", "head", "--delegation", delegation)
            ok(
                cli(t.home("med"), "delegation", "create", delegation, "--name",
                    f"Delegation {delegation}", "--head", head, "--fingerprint", fp)
            )  # fmt: skip
        for head, member in (("nh", "na"), ("nh", "nb"), ("sh", "sa")):
            fp = join(head, member)
            ok(cli(t.home(head), "enrol", member, "--fingerprint", fp))
        join("med", "obs", "--role", "auditor")
        ok(cli(t.home("med"), "enrol", "obs"))
        ok(
            cli(t.home("med"), "channel", "create", "plenary", "--name", "Plenary", "--kind",
                "plenary", "--delegation", "north", "--delegation", "south", "--member", "med")
        )  # fmt: skip
        ok(
            cli(t.home("med"), "channel", "create", "wg", "--name", "Working group", "--kind",
                "working_group", "--member", "med", "--member", "na", "--member", "sa")
        )  # fmt: skip
        yield t
    finally:
        server.stop()
        mp.undo()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)


def test_roster_channels_whoami(talks: Talks) -> None:
    roster = ok(cli(talks.home("na"), "roster"))
    members = {m["id"]: m for m in roster["members"]}
    assert members["na"]["delegation"] == "north" and members["na"]["role"] == "member"
    assert members["obs"]["role"] == "auditor"
    assert {d["id"]: d["head"] for d in roster["delegations"]} == {"north": "nh", "south": "sh"}

    channels = ok(cli(talks.home("na"), "channels"))["channels"]
    by_id = {c["id"]: c for c in channels}
    assert by_id["wg"]["members"] == ["med", "na", "sa"] and by_id["wg"]["mine"]
    assert by_id["plenary"]["mine"]

    me = ok(cli(talks.home("nh"), "whoami"))
    assert me["member"] == "nh" and me["role"] == "head" and me["enrolled"]
    assert me["witness"].endswith("/witness/north")
    assert me["talks_fingerprint"] == talks.fingerprint

    fps = ok(cli(talks.home("nh"), "fingerprint", "na"))
    assert fps["devices"][0]["fingerprint"] == talks.device_fp["na"]

    human = cli(talks.home("na"), "roster", as_json=False)
    assert human.code == 0 and "Delegation north" in human.out


def test_send_inbox_read_ack_receipts(talks: Talks) -> None:
    sent = ok(cli(talks.home("na"), "send", "plenary", "--text", "Art. 1. Ceasefire at dawn."))
    index = sent["index"]
    assert sent["version"] == 1

    inbox = ok(cli(talks.home("sh"), "inbox"))
    item = next(i for i in inbox["items"] if i["index"] == index)
    assert item["sender"] == "na" and item["title"] == "Art. 1. Ceasefire at dawn."
    assert inbox["receipts_sent"] >= 1

    draft = ok(cli(talks.home("sh"), "read", str(index)))
    assert draft["body"] == "Art. 1. Ceasefire at dawn." and draft["sender"] == "na"
    human = cli(talks.home("sh"), "read", str(index), as_json=False)
    assert "Ceasefire at dawn" in human.out

    ok(cli(talks.home("med"), "inbox"))
    ack = ok(cli(talks.home("med"), "ack", str(index)))
    assert ack["index"] > index
    again = cli(talks.home("med"), "ack", str(index))
    assert again.code == 2 and "already" in again.err

    receipts = ok(cli(talks.home("na"), "receipts", str(index)))
    lines = {r["member"]: r for r in receipts["recipients"]}
    assert lines["sh"]["received"] is not None
    assert lines["med"]["acknowledged"] is not None
    assert lines["nb"]["received"] is None  # has not looked yet
    assert "na" not in lines  # the sender's own device awaits nothing


def test_rich_markup_injection_through_a_draft_title_renders_literally(talks: Talks) -> None:
    """A title is the sender's text: the tables rich lays out must show it as written,
    never as a style, a hyperlink or an emoji (control characters are refused at sending)."""
    title = "[bold red]Signed[/] [link=https://evil.example]annex[/link] :warning:"
    sent = ok(cli(talks.home("na"), "send", "plenary", "--text", "Art. 2.", "--title", title))
    inbox = cli(talks.home("sh"), "inbox", as_json=False)
    assert inbox.code == 0, inbox.err
    line = next(x for x in inbox.out.splitlines() if x.lstrip().startswith(str(sent["index"])))
    assert title in line and "\x1b" not in inbox.out
    history = cli(talks.home("sh"), "history", str(sent["index"]), as_json=False)
    assert title in history.out and "\x1b" not in history.out


def test_lineage_and_history(talks: Talks) -> None:
    v1 = ok(cli(talks.home("na"), "send", "wg", "--text", "Corridor opens at 06:00."))
    ok(cli(talks.home("sa"), "inbox"))
    v2 = ok(
        cli(talks.home("sa"), "send", "wg", "--text", "Corridor opens at [06:00] 05:00.",
            "--title", "Redline", "--parent", str(v1["index"]))
    )  # fmt: skip
    assert v2["version"] == 2 and v2["draft"] == v1["draft"]
    v3 = ok(
        cli(talks.home("na"), "send", "wg", "--text", "Corridor opens at 05:30.",
            f"--draft={v1['draft']}", f"--parent={v2['leaf']}")
    )  # fmt: skip
    assert v3["version"] == 3

    history = ok(cli(talks.home("med"), "history", v1["draft"]))
    assert [v["version"] for v in history["versions"]] == [1, 2, 3]
    assert history["versions"][1]["parents"] == [v1["leaf"]]
    assert history["versions"][1]["title"] == "Redline"
    by_index = ok(cli(talks.home("med"), "history", str(v3["index"])))
    assert by_index["draft"] == v1["draft"]

    # A parent from another channel or a made-up draft id is refused before sending.
    other = ok(cli(talks.home("na"), "send", "plenary", "--text", "Unrelated."))
    bad = cli(talks.home("na"), "send", "wg", "--text", "x", "--parent", str(other["index"]))
    assert bad.code == 2
    bad = cli(talks.home("na"), "send", "wg", "--text", "x", "--parent", "999999")
    assert bad.code == 2


def test_file_attachment_saved_safely(talks: Talks, tmp_path: Path) -> None:
    csv = b"id,name\n1,Ahmed\n2,Ines\n"

    async def send() -> int:
        async with DocketClient(talks.home("sa"), passphrase=PASSPHRASE) as client:
            sent = await client.send(
                "wg",
                Payload(
                    title="Detainee list",
                    file_name="../../.list.csv",
                    media_type="text/csv",
                    file_data=csv,
                ),
            )
            return sent.index

    index = asyncio.run(send())
    out = tmp_path / "saved"
    first = ok(cli(talks.home("na"), "read", str(index), "--save", str(out)))
    assert first["file"] == {"name": "../../.list.csv", "size": len(csv), "type": "text/csv"}
    second = ok(cli(talks.home("na"), "read", str(index), "--save", str(out)))
    saved = sorted(p.name for p in out.iterdir())
    assert saved == ["_.._.list (1).csv", "_.._.list.csv"]
    assert all((out / name).read_bytes() == csv for name in saved)
    assert first["saved"] != second["saved"]

    # Sending a file from disk through the CLI.
    path = tmp_path / "proposal.txt"
    path.write_text("Art. 2. Exchange of lists.\n")
    sent = ok(cli(talks.home("na"), "send", "wg", str(path)))
    got = ok(cli(talks.home("med"), "read", str(sent["index"])))
    assert got["file"]["name"] == "proposal.txt" and got["title"] == "proposal.txt"


def test_not_a_member_or_recipient(talks: Talks) -> None:
    assert cli(talks.home("nb"), "send", "wg", "--text", "x").code == 2
    wg_draft = ok(cli(talks.home("na"), "send", "wg", "--text", "Only for the group."))
    refused = cli(talks.home("nb"), "read", str(wg_draft["index"]))
    assert refused.code == 2 and "not addressed" in refused.err
    assert cli(talks.home("nb"), "read", "0").code == 2  # the genesis is no draft


def test_roles_are_enforced_locally(talks: Talks) -> None:
    # Members cannot change the roster; heads only their own delegation, members only.
    assert cli(talks.home("na"), "channel", "create", "x", "--name", "X", "--kind",
               "plenary", "--member", "na").code == 2  # fmt: skip
    assert cli(talks.home("na"), "invite", "someone").code == 2
    assert cli(talks.home("nh"), "invite", "boss", "--role", "staff").code == 2
    assert cli(talks.home("sh"), "remove", "na").code == 2
    assert cli(talks.home("med"), "enrol", "nobody-invited").code == 2
    # A fingerprint that does not match what the invitee read back is refused.
    code = ok(cli(talks.home("nh"), "invite", "nc"))["code"]
    ok(cli(talks.home("nh").parent / "nc", "join", code, "--name", "Person nc"))
    # Until enrolled, the joined device is told so, not shown a server error.
    pending = cli(talks.home("nh").parent / "nc", "inbox")
    assert pending.code == 2 and "docket enrol nc" in pending.err
    wrong = cli(talks.home("nh"), "enrol", "nc", "--fingerprint", "12345 " * 6)
    assert wrong.code == 1 and "key_change" in wrong.err
    # Only the mediator creates delegations, and only for a head who joined.
    assert cli(talks.home("nh"), "delegation", "create", "west", "--name", "West",
               "--head", "nc").code == 2  # fmt: skip
    assert cli(talks.home("med"), "delegation", "create", "west", "--name", "West",
               "--head", "nobody").code == 2  # fmt: skip
    # A home belongs to one talks; founding again is refused.
    again = cli(talks.home("med"), "talks", "found", "--token", talks.server.token, "--log-key",
                talks.server.log_key, "--origin", talks.server.origin, "--title", "Again",
                "--name", "M")  # fmt: skip
    assert again.code == 2


def test_join_checks_the_talks_fingerprint(talks: Talks, tmp_path: Path) -> None:
    code = ok(cli(talks.home("sh"), "invite", "sd"))["code"]
    other = "11111 " * 8
    refused = cli(tmp_path / "sd", "join", code, "--name", "Person sd", "--talks", other)
    assert refused.code == 1 and refused.data["error"]["code"] == "key_change"


def test_watch_sees_a_new_draft(talks: Talks) -> None:
    async def scenario() -> list[int]:
        async with (
            DocketClient(talks.home("sh"), passphrase=PASSPHRASE) as watcher,
            DocketClient(talks.home("na"), passphrase=PASSPHRASE) as sender,
        ):
            await watcher.inbox()

            async def send_later() -> int:
                await asyncio.sleep(0.3)
                sent = await sender.send("plenary", Payload(title="Watch me", body="now"))
                return sent.index

            task = asyncio.create_task(send_later())
            got = [item.index async for item in watcher.watch(count=1, timeout=15)]
            assert got == [await task]
            return got

    assert len(asyncio.run(scenario())) == 1
    quiet = cli(talks.home("sh"), "watch", "--count", "1", "--timeout", "0.5", as_json=False)
    assert quiet.code == 0 and "No new drafts" in quiet.out


def test_log_lists_metadata_only(talks: Talks) -> None:
    log = ok(cli(talks.home("obs"), "log"))
    kinds = {e["kind"] for e in log["entries"]}
    assert kinds == {"genesis", "roster", "channel", "draft", "receipt"}
    assert log["entries"][0]["index"] == 0 and log["size"] == len(log["entries"])
    assert log["checkpoints"]["checkpoint"]["size"] == log["size"]
    text = json.dumps(log)
    assert "Ceasefire at dawn" not in text  # the auditor never sees plaintext
    page = ok(cli(talks.home("obs"), "log", "--start", "2", "--limit", "3"))
    assert [e["index"] for e in page["entries"]] == [2, 3, 4]


def test_audit_and_evidence(talks: Talks, tmp_path: Path) -> None:
    sent = ok(cli(talks.home("na"), "send", "plenary", "--text", "Art. 9. Signed text."))
    ok(cli(talks.home("sh"), "inbox"))
    ok(cli(talks.home("med"), "inbox"))
    talks.witness_all()

    audit = ok(cli(talks.home("obs"), "audit"))
    assert audit["ok"] is True and audit["alarms"] == []
    assert audit["checkpoints"][-1]["trusted"] is True
    human = cli(talks.home("obs"), "audit", as_json=False)
    assert human.code == 0 and ": OK" in human.out

    bundle = tmp_path / "evidence.json"
    ok(cli(talks.home("sh"), "disclose", str(sent["index"]), "--out", str(bundle)))
    assert cli(talks.home("sh"), "disclose", str(sent["index"]), "--out", str(bundle)).code == 2
    report = ok(cli(None, "verify-evidence", str(bundle), "--talks", talks.fingerprint))
    assert report["sender"] == "na" and report["body"] == "Art. 9. Signed text."
    assert {"sh", "med"} <= {r["member"] for r in report["receipts"]}
    assert len(report["cosigners"]) == 3
    data = bundle.read_bytes()
    for offset in range(0, len(data), max(1, len(data) // 40)):
        changed = bytearray(data)
        changed[offset] ^= 0x01
        bundle.write_bytes(bytes(changed))
        assert cli(None, "verify-evidence", str(bundle), "--talks", talks.talks).code == 1


def test_disclose_needs_quorum(talks: Talks, tmp_path: Path) -> None:
    sent = ok(cli(talks.home("na"), "send", "plenary", "--text", "Not yet witnessed."))
    ok(cli(talks.home("sa"), "inbox"))
    refused = cli(talks.home("sa"), "disclose", str(sent["index"]), "--out",
                  str(tmp_path / "e.json"))  # fmt: skip
    assert refused.code == 1 and "quorum" in refused.err


def test_altered_ciphertext_is_rejected_with_a_receipt(talks: Talks) -> None:
    sent = ok(cli(talks.home("na"), "send", "plenary", "--text", "Tamper with me."))
    index = sent["index"]

    async def scenario() -> None:
        async with DocketClient(talks.home("nb"), passphrase=PASSPHRASE) as client:
            real = client._fetch_draft

            async def tampered(i: int) -> Any:
                keys, ciphertext = await real(i)
                if i == index:
                    ciphertext = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
                return keys, ciphertext

            client._fetch_draft = tampered  # type: ignore[method-assign,assignment]
            result = await client.inbox()
            assert [r.index for r in result.rejected] == [index]
            assert result.rejected[0].code == "ciphertext_mismatch"
            assert index not in [i.index for i in result.items]
            assert "forged" in [a.name for a in client.state.alarms()]

    asyncio.run(scenario())
    receipts = ok(cli(talks.home("na"), "receipts", str(index)))
    nb = next(r for r in receipts["recipients"] if r["member"] == "nb")
    assert nb["rejected"] == "ciphertext_mismatch"
    assert cli(talks.home("nb"), "read", str(index)).code == 1


def test_server_unreachable(talks: Talks) -> None:
    dead = "http://127.0.0.1:9"
    offline = cli(talks.home("na"), "--server", dead, "roster")
    assert offline.code == 0 and "showing the log as verified" in offline.err
    down = cli(talks.home("na"), "--server", dead, "inbox")
    assert down.code == 3 and down.err.count("\n") == 1


def test_wrong_passphrase(talks: Talks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_PASSPHRASE", "not it")
    result = cli(talks.home("na"), "inbox")
    assert result.code == 4 and "wrong passphrase" in result.err
    assert result.data["error"]["exit"] == 4


def test_channel_members_and_remove(talks: Talks) -> None:
    ok(cli(talks.home("med"), "channel", "members", "wg", "--member", "med", "--member", "na",
           "--member", "sa", "--member", "nb"))  # fmt: skip
    channels = ok(cli(talks.home("nb"), "channels"))["channels"]
    assert next(c for c in channels if c["id"] == "wg")["members"] == ["med", "na", "nb", "sa"]

    ok(cli(talks.home("nh"), "remove", "nb"))
    roster = ok(cli(talks.home("na"), "roster"))
    assert next(m for m in roster["members"] if m["id"] == "nb")["active"] is False
    # The removed device can no longer authenticate.
    gone = cli(talks.home("nb"), "inbox")
    assert gone.code == 3
    # Drafts now go to the remaining members only.
    sent = ok(cli(talks.home("na"), "send", "wg", "--text", "After the removal."))
    receipts = ok(cli(talks.home("na"), "receipts", str(sent["index"])))
    assert {r["member"] for r in receipts["recipients"]} == {"med", "sa"}


def _tamper_meta(home: Path, key: str, edit: Any) -> None:
    db = sqlite3.connect(home / "state.sqlite")
    (value,) = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    db.execute(
        "UPDATE meta SET value = ? WHERE key = ?", (json.dumps(edit(json.loads(value))), key)
    )
    db.commit()
    db.close()


def test_rollback_is_an_alarm_and_freezes_sending(talks: Talks) -> None:
    home = talks.home("obs")
    ok(cli(home, "log", "--limit", "0"))
    # Pretend this client had verified a longer log than the server now shows.
    _tamper_meta(home, "checkpoint", lambda cp: {**cp, "size": cp["size"] + 5})
    result = cli(home, "log")
    assert result.code == 1 and "rollback" in result.err
    assert result.data["error"]["code"] == "rollback"
    me = ok(cli(home, "whoami"))
    assert "rollback" in me["alarms"]
    frozen = cli(home, "ack", "1")
    assert frozen.code == 1


def test_fork_is_an_alarm(talks: Talks) -> None:
    home = talks.home("sa")
    ok(cli(home, "log", "--limit", "0"))
    _tamper_meta(home, "checkpoint", lambda cp: {**cp, "root": b64e(bytes(32))})
    ok(cli(talks.home("na"), "send", "plenary", "--text", "The log grows."))
    result = cli(home, "log")
    assert result.code == 1 and result.data["error"]["code"] == "fork"
    assert cli(home, "send", "wg", "--text", "x").code == 1


def test_witness_refuses_inconsistent_checkpoint_after_restart(talks: Talks) -> None:
    home = talks.home("sh")
    ok(cli(home, "log", "--limit", "0"))  # cosigns the current checkpoint
    db = sqlite3.connect(home / "state.sqlite")
    (value,) = db.execute("SELECT value FROM meta WHERE key = 'witness'").fetchone()
    db.close()
    cosigned = json.loads(value)
    assert cosigned["size"] > 0
    # The persisted witness state says it cosigned another root at that size (as if the
    # server had shown it a different history before this restart).
    _tamper_meta(home, "witness", lambda w: {**w, "root": b64e(bytes(32))})
    ok(cli(talks.home("na"), "send", "plenary", "--text", "Grow once more."))
    refused = cli(home, "log")
    assert refused.code == 1 and refused.data["error"]["code"] == "fork"

    async def check() -> None:
        async with DocketClient(home, passphrase=PASSPHRASE) as client:
            state = client.state.witness_state(client.genesis().origin)
            assert state.size == cosigned["size"]  # nothing new was cosigned
            assert state.root == bytes(32)
            with pytest.raises(Alarm):
                await client.send("plenary", Payload(title="t", body="b"))

    asyncio.run(check())
    assert b64d(cosigned["root"]) != bytes(32)
