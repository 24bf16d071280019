"""End to end, against a real server on loopback: devices and people over months of
talks through the ``docket`` CLI (docs/PROTOCOL.md section 5a).

One server and one set of talks serve the module; the tests run in file order, each
building on the last (a new laptop, a proposal, a grant, a lost laptop revoked, key
rotation, a head replaced, a member leaving and coming back).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import PASSPHRASE
from tests.client.serverproc import ServerProc, start_server
from tests.client.test_e2e import Result, cli, ok


@dataclass
class World:
    server: ServerProc
    base: Path
    fingerprint: str
    devices: dict[str, str] = field(default_factory=dict)
    drafts: dict[str, int] = field(default_factory=dict)

    def home(self, name: str) -> Path:
        return self.base / "homes" / name


def refused(result: Result, code: str | None = None) -> str:
    assert result.code != 0, result.out
    if code is not None:
        assert code in result.err, result.err
    return result.err


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKET_KDF", "fast")
    mp.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    mp.delenv("DOCKET_HOME", raising=False)
    base = tmp_path_factory.mktemp("lifecycle")
    server = start_server(base / "server")
    try:
        founded = ok(
            cli(
                base / "homes" / "med",
                "--server", server.url,
                "talks", "found",
                "--token", server.token,
                "--log-key", server.log_key,
                "--origin", server.origin,
                "--title", "Talks on the lake",
                "--name", "The Mediator",
                "--member", "med",
                "--quorum", "1", "--rule", "count", "--accept-single-witness",
                "--no-fresh-quorum",
            )
        )  # fmt: skip
        w = World(server, base, founded["fingerprint"])

        def join(inviter: str, member: str, *invite_args: str) -> str:
            code = ok(cli(w.home(inviter), "invite", member, *invite_args))["code"]
            joined = ok(
                cli(w.home(member), "join", code, "--name", member, "--talks", w.fingerprint)
            )
            return str(joined["fingerprint"])

        fp = join("med", "nh", "--role", "head", "--delegation", "north")
        ok(cli(w.home("med"), "delegation", "create", "north", "--name", "North", "--head", "nh",
               "--fingerprint", fp))  # fmt: skip
        for member in ("na", "nb"):
            fp = join("nh", member)
            ok(cli(w.home("nh"), "enrol", member, "--fingerprint", fp))
        ok(cli(w.home("med"), "channel", "create", "wg", "--name", "Working group", "--kind",
               "working_group", "--member", "med", "--member", "na"))  # fmt: skip
        ok(cli(w.home("med"), "channel", "create", "plenary", "--name", "Plenary", "--kind",
               "plenary", "--delegation", "north", "--member", "med"))  # fmt: skip
        for i in (1, 2):
            sent = ok(cli(w.home("med"), "send", "wg", "--title", f"WG {i}", "--text", f"Text {i}"))
            w.drafts[f"wg{i}"] = sent["index"]
        sent = ok(cli(w.home("med"), "send", "plenary", "--title", "P1", "--text", "Plenary 1"))
        w.drafts["p1"] = sent["index"]
        for member in ("na", "nb", "nh"):
            ok(cli(w.home(member), "inbox"))
        yield w
    finally:
        server.stop()
        mp.undo()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("DOCKET_KDF", "fast")


def device_of(w: World, home: str) -> str:
    return str(ok(cli(w.home(home), "whoami"))["device"])


def test_head_adds_a_new_laptop_compared_aloud(world: World) -> None:
    code = ok(cli(world.home("nh"), "device", "invite", "na"))["code"]
    joined = ok(cli(world.home("na-laptop"), "join", code, "--name", "na", "--talks",
                    world.fingerprint))  # fmt: skip
    assert ok(cli(world.home("na-laptop"), "whoami"))["status"] == "not yet"
    wrong = "00000 00000 00000 00000 00000 00000"
    refused(cli(world.home("nh"), "device", "add", "na", "--fingerprint", wrong), "key_change")
    added = ok(cli(world.home("nh"), "device", "add", "na", "--fingerprint", joined["fingerprint"]))
    assert added["proposed"] is False
    me = ok(cli(world.home("na-laptop"), "whoami"))
    assert (me["member"], me["enrolled"], me["status"]) == ("na", True, "enrolled")
    world.devices["na-laptop"] = me["device"]
    listed = ok(cli(world.home("nh"), "device", "list", "na"))["devices"]
    assert {d["status"] for d in listed} == {"current"} and len(listed) == 2


def test_member_proposes_own_device_and_head_approves(world: World) -> None:
    code = ok(cli(world.home("na"), "device", "invite"))["code"]
    joined = ok(cli(world.home("na-tablet"), "join", code, "--name", "na"))
    added = ok(cli(world.home("na"), "device", "add", "na", "--fingerprint", joined["fingerprint"]))
    assert added["proposed"] is True
    assert not ok(cli(world.home("na-tablet"), "whoami"))["enrolled"]
    # Another member cannot approve it; the head can.
    refused(cli(world.home("nb"), "device", "approve", "na"), "unauthorised_change")
    ok(cli(world.home("nh"), "device", "approve", "na", "--fingerprint", joined["fingerprint"]))
    assert ok(cli(world.home("na-tablet"), "whoami"))["enrolled"]
    world.devices["na-tablet"] = device_of(world, "na-tablet")


def test_new_device_reads_history_only_through_a_grant(world: World) -> None:
    laptop = world.devices["na-laptop"]
    wg1 = world.drafts["wg1"]
    # Before the grant: the laptop is not a recipient of the earlier drafts.
    refused(cli(world.home("na-laptop"), "read", str(wg1)))
    # A grant from a non-head (nb holds no wg key and is not na) and to a device not in
    # the channel (nb's) are refused, with nothing logged.
    size = ok(cli(world.home("med"), "log", "--limit", "0"))["size"]
    refused(cli(world.home("nb"), "grant", "--channel", "wg", "--", "na", laptop))
    nb_device = device_of(world, "nb")
    refused(
        cli(world.home("med"), "grant", "--channel", "wg", "--", "nb", nb_device), "not_a_member"
    )
    assert ok(cli(world.home("med"), "log", "--limit", "0"))["size"] == size
    # na's own phone (a recipient) grants its laptop the working group's history.
    granted = ok(cli(world.home("na"), "grant", "--channel", "wg", "--", "na", laptop))
    assert granted["drafts"] == [world.drafts["wg1"], world.drafts["wg2"]]
    world.drafts["grant"] = granted["index"]
    read = ok(cli(world.home("na-laptop"), "read", str(wg1)))
    assert read["body"] == "Text 1"
    status = ok(cli(world.home("med"), "receipts", str(wg1)))
    assert [r["grant"] for r in status["readers"]] == [granted["index"]]
    # Its receipt says it came through the grant (a logged history.received act).
    assert status["readers"][0]["received"] is not None
    assert laptop not in [r["device"] for r in status["recipients"]]
    audit = ok(cli(world.home("med"), "audit"))
    assert audit["ok"], audit["alarms"]
    assert [g["index"] for g in audit["lifecycle"]["grants"]] == [granted["index"]]


def test_lost_laptop_is_revoked_and_flagged_after_the_declared_compromise(world: World) -> None:
    laptop_home = world.home("na-laptop")
    before = ok(cli(laptop_home, "send", "wg", "--title", "Early", "--text", "Still mine"))
    after = ok(cli(laptop_home, "send", "wg", "--title", "Late", "--text", "The thief's"))
    laptop = world.devices["na-laptop"]
    revoked = ok(
        cli(world.home("nh"), "device", "revoke", "--compromised-since", str(after["index"]),
            "--", "na", laptop[:10])
    )  # fmt: skip
    assert revoked["since"] == after["index"]
    # The revoked laptop can do nothing more, and says why.
    refused(cli(laptop_home, "send", "wg", "--text", "again"))
    me = ok(cli(laptop_home, "whoami"))
    assert me["status"].startswith("refused by the server (bad_"), me
    listed = ok(cli(world.home("nh"), "device", "list", "na"))["devices"]
    (status,) = [d["status"] for d in listed if d["device"] == laptop]
    assert status == (
        f"device.revoke at index {revoked['index']} by nh; compromised since index {after['index']}"
    )
    # Senders wrap no keys to it from now on.
    sent = ok(cli(world.home("med"), "send", "wg", "--text", "After the loss"))
    status = ok(cli(world.home("med"), "receipts", str(sent["index"])))
    assert laptop not in [r["device"] for r in status["recipients"]]
    # The flag: before the declared point valid, after it flagged, everywhere.
    early = ok(cli(world.home("med"), "receipts", str(before["index"])))
    late = ok(cli(world.home("med"), "receipts", str(after["index"])))
    assert (early["sender_compromised"], late["sender_compromised"]) == (False, True)
    history = ok(cli(world.home("med"), "history", str(after["index"])))
    assert history["versions"][0]["compromised"] is True
    audit = ok(cli(world.home("med"), "audit"))
    assert audit["ok"], audit["alarms"]
    (revocation,) = audit["lifecycle"]["revocations"]
    assert revocation["flagged"] == [after["index"]] and revocation["valid_before"] == 1
    text = cli(world.home("med"), "audit", as_json=False).out
    assert "signed after a declared compromise" in text
    # A revoked device can never come back.
    refused(cli(world.home("nh"), "device", "approve", "na"))


def test_head_rotates_own_keys_and_old_signatures_stay_attributable(world: World) -> None:
    old = device_of(world, "nh")
    rotated = ok(cli(world.home("nh"), "device", "rotate"))
    assert rotated["state"] == "rotated" and rotated["new_device"] != old
    assert device_of(world, "nh") == rotated["new_device"]
    # The new key works (a roster change) and the old one's entries still audit clean.
    listed = ok(cli(world.home("nh"), "device", "list", "nh"))["devices"]
    assert {d["device"]: d["status"].split(" ")[0] for d in listed} == {
        rotated["new_device"]: "current",
        old: "device.rotate",
    }
    assert ok(cli(world.home("nh"), "read", str(world.drafts["p1"])))["body"] == "Plenary 1"
    assert ok(cli(world.home("med"), "audit"))["ok"]


def test_member_rotation_needs_the_head(world: World) -> None:
    old = device_of(world, "nb")
    proposed = ok(cli(world.home("nb"), "device", "rotate"))
    assert proposed["state"] == "proposed"
    assert ok(cli(world.home("nb"), "device", "rotate"))["state"] == "waiting"
    # The member's old key alone cannot rotate itself in.
    refused(cli(world.home("nb"), "device", "rotate", "--", "nb", old[:10]), "unauthorised_change")
    ok(cli(world.home("nh"), "device", "rotate", "--", "nb", old[:10]))
    finished = ok(cli(world.home("nb"), "device", "rotate"))
    assert finished["state"] == "rotated" and device_of(world, "nb") == finished["new_device"]
    # Drafts wrapped to the old id still open here (former keys are kept).
    assert ok(cli(world.home("nb"), "read", str(world.drafts["p1"])))["body"] == "Plenary 1"
    ok(cli(world.home("med"), "send", "plenary", "--text", "After nb's rotation"))
    assert ok(cli(world.home("nb"), "inbox"))


def test_keys_export_import_and_passphrase(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    backup = world.base / "na.backup"
    ok(cli(world.home("na-tablet"), "keys", "export", str(backup)))
    restored = ok(cli(world.home("na-tablet-restored"), "keys", "import", str(backup)))
    assert restored["device"] == world.devices["na-tablet"]
    # Tampered: one byte of the sealed part changed.
    data = bytearray(backup.read_bytes())
    at = data.index(b'"sealed":"') + 20
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    tampered = world.base / "tampered.backup"
    tampered.write_bytes(bytes(data))
    refused(cli(world.home("fresh"), "keys", "import", str(tampered)), "tampered")
    assert not (world.home("fresh") / "keystore.json").exists()
    # A home pinned to these talks refuses a backup of other talks: a home of another
    # founding (its own server) is made below in tests/client/test_backup.py; here, a
    # home that already has keys refuses any import.
    refused(cli(world.home("na"), "keys", "import", str(backup)), "already has a key store")
    # Passphrase change: weak refused with a clear message; then the old one fails.
    monkeypatch.setenv("DOCKET_NEW_PASSPHRASE", "short")
    err = refused(cli(world.home("na-tablet-restored"), "passphrase"))
    assert "too weak" in err
    monkeypatch.setenv("DOCKET_NEW_PASSPHRASE", "a much better passphrase 2026")
    ok(cli(world.home("na-tablet-restored"), "passphrase"))
    refused(cli(world.home("na-tablet-restored"), "keys", "export", str(world.base / "x")))
    monkeypatch.setenv("DOCKET_PASSPHRASE", "a much better passphrase 2026")
    ok(cli(world.home("na-tablet-restored"), "keys", "export", str(world.base / "y")))


def test_head_replaced_and_old_heads_authority_ends(world: World) -> None:
    replaced = ok(cli(world.home("med"), "delegation", "head", "north", "na"))
    roster = ok(cli(world.home("med"), "roster"))
    assert roster["delegations"] == [{"head": "na", "id": "north", "name": "North"}]
    refused(cli(world.home("nh"), "device", "invite", "nb"))
    assert replaced["index"] > 0


def test_member_leaves_and_comes_back_under_a_new_id(world: World) -> None:
    left = ok(cli(world.home("nb"), "leave"))
    me = ok(cli(world.home("nb"), "whoami"))
    assert me["status"] == f"left at index {left['index']} by nb", me
    # The old id is not reused: the new head invites the person under a new id.
    refused(cli(world.home("na"), "invite", "nb"))
    code = ok(cli(world.home("na"), "invite", "nb-2"))["code"]
    # The log keeps the departed record's name, so the returning person's display name
    # must read differently (the look-alike rule counts departed members too).
    fp = ok(cli(world.home("nb-again"), "join", code, "--name", "nb, returned"))["fingerprint"]
    ok(cli(world.home("na"), "enrol", "nb-2", "--fingerprint", fp))
    assert ok(cli(world.home("nb-again"), "whoami"))["member"] == "nb-2"
    audit: dict[str, Any] = ok(cli(world.home("med"), "audit"))
    assert audit["ok"], audit["alarms"]
