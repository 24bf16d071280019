"""The docket CLI without a server: parsing, help, exit codes, local commands, file names."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from client.cli import build_parser, run, safe_file_name, save_new_file, terminal_safe


def subcommands() -> list[list[str]]:
    """Every subcommand path, e.g. ``["talks", "found"]`` (leaves only)."""
    out: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                    if nested:
                        walk(sub, [*prefix, name])
                    else:
                        out.append([*prefix, name])

    walk(build_parser(), [])
    return out


EXPECTED = {
    "init", "join", "whoami", "fingerprint", "roster", "channels", "send", "inbox", "read",
    "ack", "receipts", "history", "watch", "log", "checkpoint", "talks found", "delegation create",
    "channel create", "channel members", "invite", "enrol", "remove", "audit", "disclose",
    "verify-evidence", "demo", "witness add", "witness remove", "witness list", "witness init",
    "witness serve", "policy show", "policy set",
    "server show", "server set-url",
    "device invite", "device add", "device approve", "device list", "device remove",
    "device rotate", "device revoke", "grant", "leave", "keys export", "keys import",
    "passphrase", "delegation head",
    "diff", "rounds", "round open", "round close", "round countersign", "initial", "agreed",
    "call open", "call release", "call list", "propose", "reveal", "proposal",
    "desk",
}  # fmt: skip


def test_subcommands_are_exactly_the_documented_ones() -> None:
    assert {" ".join(p) for p in subcommands()} == EXPECTED


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_every_subcommand_has_help(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([*path.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: docket")
    assert len(out.splitlines()) > 2


def test_top_level_help_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    assert "Exit codes" in capsys.readouterr().out
    assert run([]) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["send"],
        ["read", "x"],
        ["read", "-1"],
        ["join"],
        ["talks"],
        ["talks", "found", "--token", "t"],
        ["channel", "create", "c", "--name", "n", "--kind", "nonsense"],
        ["invite", "x", "--role", "king"],
        ["watch", "--count", "many"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--home", str(home), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("docket: ") and err.count("\n") == 1


def test_usage_error_json_shape(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--json", "--home", str(home), "frobnicate"]) == 2
    body = json.loads(capsys.readouterr().out)
    assert body["error"]["exit"] == 2 and body["error"]["message"]


def test_send_needs_exactly_one_source(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--home", str(home), "send", "plenary"]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert run(["--home", str(home), "send", "plenary", "f.txt", "--text", "t"]) == 2


def test_missing_home_is_a_state_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--home", str(home), "whoami"]) == 4
    assert "docket init" in capsys.readouterr().err
    assert run(["--home", str(home), "--json", "fingerprint"]) == 4
    assert json.loads(capsys.readouterr().out)["error"]["exit"] == 4


def test_init_whoami_fingerprint(
    home: Path, passphrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--home", str(home), "--server", "http://127.0.0.1:9", "init"]) == 0
    assert "Device fingerprint" in capsys.readouterr().out
    assert run(["--home", str(home), "init"]) == 4  # never overwrites keys
    capsys.readouterr()

    assert run(["--home", str(home), "--json", "whoami"]) == 0
    me = json.loads(capsys.readouterr().out)
    assert me["enrolled"] is False and me["member"] is None
    assert me["server"] == "http://127.0.0.1:9"
    assert len(me["fingerprint"].split()) == 6
    assert set(me) >= {"device", "fingerprint", "member", "role", "talks", "alarms"}

    assert run(["--home", str(home), "--json", "fingerprint"]) == 0
    fp = json.loads(capsys.readouterr().out)
    assert fp == {
        "device": me["device"],
        "device_fingerprint": me["fingerprint"],
        "talks": None,
        "talks_fingerprint": None,
    }

    # Commands that need talks say so (usage), without a traceback.
    assert run(["--home", str(home), "roster"]) == 2
    assert "join" in capsys.readouterr().err


def test_wrong_passphrase_exit_4(
    home: Path, passphrase: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--home", str(home), "init"]) == 0
    monkeypatch.setenv("DOCKET_PASSPHRASE", "not the passphrase")
    code = run(
        ["--home", str(home), "talks", "found", "--token", "t", "--log-key", "A" * 43,
         "--origin", "o", "--title", "T", "--name", "N"]
    )  # fmt: skip
    assert code == 4
    assert "wrong passphrase" in capsys.readouterr().err


def test_unreachable_server_exit_3(
    home: Path, passphrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from client.api import InvitationCode

    assert run(["--home", str(home), "init"]) == 0
    code = InvitationCode(
        server="http://127.0.0.1:9",  # discard port: nothing listens
        talks=bytes(32),
        id="i",
        token="t",
        member="m",
        role="member",
        delegation="north",
    ).encode()
    capsys.readouterr()
    assert run(["--home", str(home), "join", code, "--name", "M"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("docket: ") and err.count("\n") == 1


def test_bad_invitation_code(
    home: Path, passphrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--home", str(home), "init"]) == 0
    assert run(["--home", str(home), "join", "docket-invite:!!", "--name", "M"]) == 2
    assert run(["--home", str(home), "join", "hello", "--name", "M"]) == 2


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("/abs/path.txt", "_abs_path.txt"),
        ("..\\windows\\evil.exe", "_windows_evil.exe"),
        (".bashrc", "bashrc"),
        ("...", "attachment"),
        ("", "attachment"),
        (None, "attachment"),
        ("a\x1b[31mred\x07.txt", "a_[31mred_.txt"),
        ("C:evil", "C_evil"),
    ],
)
def test_safe_file_name(given: str | None, expected: str) -> None:
    name = safe_file_name(given)
    assert name == expected
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert all(c.isprintable() for c in name)


def test_safe_file_name_is_bounded() -> None:
    assert len(safe_file_name("é" * 500).encode()) <= 200


def test_save_never_overwrites(tmp_path: Path) -> None:
    first = save_new_file(tmp_path, "list.csv", b"one")
    second = save_new_file(tmp_path, "list.csv", b"two")
    third = save_new_file(tmp_path, "list.csv", b"three")
    assert [p.name for p in (first, second, third)] == ["list.csv", "list (1).csv", "list (2).csv"]
    assert first.read_bytes() == b"one"
    # A symlink planted under the name is not followed.
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    (tmp_path / "link").symlink_to(target)
    saved = save_new_file(tmp_path, "link", b"x")
    assert saved.name == "link (1)" and target.read_bytes() == b"keep"


def test_terminal_safe_neutralises_controls() -> None:
    assert terminal_safe("Plain text, accents é, tabs\tok") == "Plain text, accents é, tabs\tok"
    assert terminal_safe("\x1b[2Jwipe") == "?[2Jwipe"
    assert terminal_safe("csi\x9b31m") == "csi?31m"
    assert terminal_safe("abc\u202edcba") == "abc?dcba"  # right-to-left override


def test_global_options_after_the_subcommand(
    home: Path, passphrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["init", "--home", str(home), "--server", "http://127.0.0.1:9"]) == 0
    capsys.readouterr()
    assert run(["whoami", "--json", "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out)["server"] == "http://127.0.0.1:9"
    # Before the subcommand still works, and a later --server wins over the stored one.
    assert run(["--home", str(home), "whoami", "--json", "--server", "http://h:1"]) == 0
    assert json.loads(capsys.readouterr().out)["server"] == "http://h:1"


def test_ids_beginning_with_a_dash_are_values_not_options() -> None:
    """A base64url id may begin with '-': `--talks -Xy` must not read as an option."""
    from client.cli import join_id_values

    known = {"--json", "--talks", "--parent", "--draft", "--text"}
    assert join_id_values(["verify-evidence", "f", "--talks", "-AbC"], known) == [
        "verify-evidence",
        "f",
        "--talks=-AbC",
    ]
    assert join_id_values(["send", "wg", "--parent", "--xY", "--draft", "-q"], known) == [
        "send",
        "wg",
        "--parent=--xY",
        "--draft=-q",
    ]
    assert join_id_values(["history", "-Q1"], known) == ["history", "--draft=-Q1"]
    # A real option after the flag stays an option (argparse then reports the usage error).
    assert join_id_values(["x", "--talks", "--json"], known) == ["x", "--talks", "--json"]


def test_audit_progress_bar_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sys

    from client.cli import Context, _progress_bar

    args = argparse.Namespace(json=False, home=str(tmp_path), server=None)
    assert _progress_bar(Context(args)) is None  # captured stderr is not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    show = _progress_bar(Context(args))
    assert show is not None
    show(5, 10)
    show(10, 10)
    err = capsys.readouterr().err
    assert "5/10 entries" in err and err.endswith("10/10 entries\n")
    assert _progress_bar(Context(argparse.Namespace(json=True, home=None, server=None))) is None


HOSTILE_NAME = "[bold red]Mallory[/] [link=https://evil.example]the mediator[/link] :warning:"


def test_rich_markup_injection_through_a_display_name_renders_literally(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A display name is another party's text: rich must print it as written (no style,
    no hyperlink, no emoji), and the environment must not switch colour on."""
    from types import SimpleNamespace
    from typing import Any

    from client.cli import Context

    device = SimpleNamespace(fingerprint="fp")
    member = SimpleNamespace(
        id="nh", delegation="north", role="head", name=HOSTILE_NAME + "\x1b[2J\u202e",
        active=False, devices={bytes(32): device},
    )  # fmt: skip
    roster = SimpleNamespace(
        genesis=SimpleNamespace(title="[blink]Talks", fingerprint="talks fp"),
        members={"nh": member},
        delegations={"north": SimpleNamespace(id="north", name="[i]North", head="nh")},
        head=bytes(32),
        seq=1,
    )

    class FakeClient:
        def __init__(self) -> None:
            self.roster = roster

        async def __aenter__(self) -> FakeClient:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def sync(self) -> None:
            return None

    def fake_client(self: Context) -> Any:
        return FakeClient()

    monkeypatch.setattr(Context, "client", fake_client)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert run(["--home", str(tmp_path), "roster"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "Talks: [blink]Talks (talks fp)" in out
    assert "Delegation north: [i]North (head: nh)" in out
    assert f"  nh  head  {HOSTILE_NAME}?[2J?  (1 device(s))  [removed]\n" in out


def test_founding_with_a_single_witness_is_refused_unless_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Quorum 1 lets the host and that one witness fork the log unseen."""
    key = "A" * 43
    base = ["--home", str(tmp_path / "h"), "talks", "found", "--token", "t", "--log-key", key,
            "--origin", "o.example/t", "--title", "T", "--name", "M"]  # fmt: skip
    assert run([*base, "--rule", "count", "--quorum", "1"]) == 2
    err = capsys.readouterr().err
    assert "--accept-single-witness" in err and err.count("\n") == 1
    assert not (tmp_path / "h").exists()  # nothing written
