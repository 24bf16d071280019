"""Rough edges a new user hits, each against a real server on loopback: refusals that
give the right reason, exit codes, messages that say what to do next, stable ``--json``
error codes, safe names and short invitation codes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from client.cli.drafts import MAX_FILE_BYTES
from protocol.encoding import b64e
from protocol.keys import DeviceKeys
from tests.client.conftest import PASSPHRASE
from tests.client.serverproc import ServerProc, start_server
from tests.client.test_e2e import cli, ok


@dataclass
class Small:
    server: ServerProc
    base: Path
    fingerprint: str
    talks: str

    def home(self, member: str) -> Path:
        return self.base / "homes" / member


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Small]:
    """Talks with a mediator, two delegations (north: nh, na; south: sh) and a plenary."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKET_KDF", "fast")
    mp.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    mp.delenv("DOCKET_HOME", raising=False)
    base = tmp_path_factory.mktemp("rough")
    server = start_server(base / "server")
    try:
        med = base / "homes" / "med"
        founded = ok(
            cli(med, "--server", server.url, "talks", "found", "--token", server.token,
                "--log-key", server.log_key, "--origin", server.origin, "--title", "T",
                "--member", "med", "--name", "The Mediator", "--quorum", "1", "--rule",
                "count", "--accept-single-witness", "--no-fresh-quorum")
        )  # fmt: skip
        s = Small(server, base, founded["fingerprint"], founded["talks"])

        def join(inviter: str, member: str, *invite_args: str) -> str:
            code = ok(cli(s.home(inviter), "invite", member, *invite_args))["code"]
            joined = ok(cli(s.home(member), "join", code, "--name", f"Person {member}"))
            return str(joined["fingerprint"])

        for head, delegation in (("nh", "north"), ("sh", "south")):
            fp = join("med", head, "--role", "head", "--delegation", delegation)
            ok(
                cli(med, "delegation", "create", delegation, "--name", delegation.title(),
                    "--head", head, "--fingerprint", fp)
            )  # fmt: skip
        fp = join("nh", "na")
        ok(cli(s.home("nh"), "enrol", "na", "--fingerprint", fp))
        ok(
            cli(med, "channel", "create", "plenary", "--name", "Plenary", "--kind", "plenary",
                "--delegation", "north", "--delegation", "south", "--member", "med")
        )  # fmt: skip
        yield s
    finally:
        server.stop()
        mp.undo()


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)


def test_head_inviting_into_another_delegation_is_refused(small: Small) -> None:
    """A head naming another delegation must not quietly get a code for their own."""
    refused = cli(small.home("nh"), "invite", "spy", "--delegation", "south")
    assert refused.code == 2, refused.err
    assert refused.data["error"]["code"] == "forbidden"
    assert "'south'" in refused.err and "own delegation" in refused.err
    # Naming their own delegation, or none, still works.
    assert ok(cli(small.home("nh"), "invite", "nc", "--delegation", "north"))["delegation"] == (
        "north"
    )


def test_delegation_create_on_an_existing_delegation_says_it_exists(small: Small) -> None:
    refused = cli(small.home("med"), "delegation", "create", "north", "--name", "N", "--head", "z")
    assert refused.code == 2
    assert refused.data["error"]["code"] == "roster_conflict"
    assert "already exists" in refused.err and "'nh'" in refused.err
    assert "invite" not in refused.err


def test_delegation_create_for_a_head_invited_elsewhere_says_so(small: Small) -> None:
    ok(cli(small.home("med"), "invite", "eh", "--role", "head", "--delegation", "east"))
    refused = cli(small.home("med"), "delegation", "create", "west", "--name", "W", "--head", "eh")
    assert refused.code == 2 and "invited to head 'east'" in refused.err


def test_oversized_file_has_its_own_exit_code_and_states_the_limit(
    small: Small, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:  # sparse: nothing is written but the size
        fh.truncate(MAX_FILE_BYTES + 1)
    refused = cli(small.home("na"), "send", "plenary", str(big))
    assert refused.code == 5, refused.err
    assert refused.data["error"] == {
        "code": "too_large",
        "exit": 5,
        "message": refused.err.removeprefix("docket: ").strip(),
    }
    assert str(MAX_FILE_BYTES) in refused.err


def test_too_large_from_the_protocol_or_the_server_exits_5() -> None:
    from client.cli.app import _error_line
    from client.errors import ServerError
    from protocol.errors import TooLargeError

    assert _error_line(TooLargeError("draft too large"))[:2] == (5, "too_large")
    exit_code, code, message = _error_line(
        ServerError(413, "too_large", "request body larger than 1048576 bytes")
    )
    assert (exit_code, code) == (5, "too_large") and "1048576" in message


def test_truncated_invitation_code_says_what_to_do(small: Small, tmp_path: Path) -> None:
    code = ok(cli(small.home("nh"), "invite", "nd"))["code"]
    home = tmp_path / "joiner"
    for mangled in (code[:-25], code[:60], code[:40] + "*" + code[41:]):
        refused = cli(home, "join", mangled, "--name", "D")
        assert refused.code == 2, refused.err
        assert refused.data["error"]["code"] == "bad_invitation"
        assert "cut short or mistyped" in refused.err and "paste it whole" in refused.err
        assert "base64" not in refused.err
    refused = cli(home, "join", "hello", "--name", "D")
    assert refused.data["error"]["code"] == "bad_invitation"
    # A code wrapped over two lines by a mail program is still the code.
    wrapped = code[:100] + "\n" + code[100:]
    assert cli(home, "join", wrapped, "--name", "D").code == 0


def test_mistyped_founding_token_and_log_key_are_named(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        home = tmp_path / "med"

        def found(token: str, log_key: str) -> dict[str, str]:
            r = cli(home, "--server", server.url, "talks", "found", "--token", token,
                    "--log-key", log_key, "--origin", server.origin, "--title", "T",
                    "--name", "M")  # fmt: skip
            assert r.code == 2, (r.code, r.err)
            assert "base64" not in r.err and "docket-server init" in r.err
            return dict(r.data["error"])

        assert found(server.token, server.log_key[:-1])["code"] == "bad_log_key"
        assert found(server.token[:-2], server.log_key)["code"] == "bad_founding_token"
        wrong_token = b64e(bytes(32))
        assert found(wrong_token, server.log_key)["code"] == "bad_founding_token"
        other_key = b64e(DeviceKeys.generate(os.urandom).public.sign_pk)
        assert found(server.token, other_key)["code"] == "bad_log_key"
        # Nothing was founded: the right values still found the talks.
        r = cli(home, "--server", server.url, "talks", "found", "--token", server.token,
                "--log-key", server.log_key, "--origin", server.origin, "--title", "T",
                "--name", "M", "--no-fresh-quorum")  # fmt: skip
        assert r.code == 0, r.err
    finally:
        server.stop()


def test_audit_of_an_export_without_talks_asks_for_talks(tmp_path: Path) -> None:
    export = tmp_path / "log.jsonl"
    export.write_bytes(b'{"origin":"o.example/t","t":"docket-log","v":1}\n')
    refused = cli(tmp_path / "nohome", "audit", "--log", str(export))
    assert refused.code == 2
    assert "--talks" in refused.err and "join" not in refused.err
    assert refused.data["error"]["code"] == "usage"


def test_fingerprint_json_device_is_the_device_id(small: Small) -> None:
    me = ok(cli(small.home("na"), "whoami"))
    fp = ok(cli(small.home("na"), "fingerprint"))
    assert fp["device"] == me["device"]
    assert fp["device_fingerprint"] == me["fingerprint"]
    assert fp["talks_fingerprint"] == small.fingerprint and fp["talks"] == small.talks
    listed = ok(cli(small.home("na"), "fingerprint", "na"))["devices"]
    assert [d["device"] for d in listed] == [me["device"]]
    assert listed[0]["device_fingerprint"] == me["fingerprint"]


def test_verify_evidence_shows_and_extracts_the_disclosed_text(
    small: Small, tmp_path: Path
) -> None:
    text = "Art. 4. Corridors open at dawn.\nArt. 5. \x1b[2JNo wipe.\u202e"
    sent = ok(cli(small.home("na"), "send", "plenary", "--text", text, "--title", "../../x"))
    ok(cli(small.home("sh"), "inbox"))
    ok(cli(small.home("med"), "log", "--limit", "0"))  # the mediator's witness cosigns
    bundle = tmp_path / "evidence.json"
    ok(cli(small.home("sh"), "disclose", str(sent["index"]), "--out", str(bundle)))
    shown = cli(None, "verify-evidence", str(bundle), "--talks", small.fingerprint, "--show",
                as_json=False)  # fmt: skip
    assert shown.code == 0, shown.err
    assert "Art. 4. Corridors open at dawn." in shown.out
    assert "\x1b" not in shown.out and "\u202e" not in shown.out
    out = tmp_path / "out"
    extracted = ok(
        cli(None, "verify-evidence", str(bundle), "--talks", small.fingerprint, "--extract",
            str(out))
    )  # fmt: skip
    files = list(out.iterdir())
    assert [str(p) for p in files] == extracted["extracted"]
    assert files[0].parent == out and files[0].read_text() == text
    assert not files[0].name.startswith(".") and "/" not in files[0].name


def test_demo_clean_removes_only_demo_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    demo = tmp_path / "docket-demo-abc"
    (demo / "homes").mkdir(parents=True)
    (demo / ".docket-demo").write_text("x")
    lookalike = tmp_path / "docket-demo-not-ours"
    lookalike.mkdir()
    removed = ok(cli(None, "demo", "--clean"))["removed"]
    assert removed == [str(demo)] and not demo.exists() and lookalike.exists()
    refused = cli(None, "demo", "--clean", "--workdir", str(lookalike))
    assert refused.code == 2 and lookalike.exists()
