"""Rough edges a new user hits, each against a real server on loopback: refusals that
give the right reason, exit codes, messages that say what to do next, stable ``--json``
error codes, safe names and short invitation codes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from client import shortcode
from client.api import DocketClient
from client.cli import safe_file_name
from client.cli.drafts import MAX_FILE_BYTES
from protocol import crypto
from protocol.encoding import b64e
from protocol.envelope import Payload
from protocol.keys import DeviceKeys
from tests.client.conftest import PASSPHRASE
from tests.client.serverproc import ServerProc, start_server
from tests.client.test_e2e import Result, cli, ok


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
    # Past the inline limit a file travels as an annex stream, up to the server's own
    # limit (4 GiB by default), which it states when it refuses the upload up front.
    limit = 4 * 1024**3
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:  # sparse: nothing is written but the size
        fh.truncate(limit + 1)
    assert big.stat().st_size > MAX_FILE_BYTES
    refused = cli(small.home("na"), "send", "plenary", str(big))
    assert refused.code == 5, refused.err
    assert refused.data["error"] == {
        "code": "too_large",
        "exit": 5,
        "message": refused.err.removeprefix("docket: ").strip(),
    }
    assert str(limit) in refused.err


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


# --- Unicode: what other parties wrote reaches no terminal, file or JSON raw -------------

HOSTILE = "Art. 1.\u202etxt.exe \x9b31m \x1b[2J \u200b\u2028\U000e0001 end"


def _raw_json(result: Result) -> str:
    return result.out.strip().splitlines()[-1]


def test_bidi_and_c1_in_a_draft_body_are_escaped_in_json_and_text(small: Small) -> None:
    sent = ok(cli(small.home("na"), "send", "plenary", "--text", HOSTILE, "--title", "Body"))
    read = cli(small.home("sh"), "read", str(sent["index"]))
    assert read.code == 0, read.err
    raw = _raw_json(read)
    for c in ("\u202e", "\x9b", "\x1b", "\u200b", "\u2028", "\U000e0001"):
        assert c not in raw
    assert "\\u202e" in raw and "\\u009b" in raw and "\\udb40\\udc01" in raw
    assert read.data["body"] == HOSTILE  # the same value, escaped
    text = cli(small.home("sh"), "read", str(sent["index"]), as_json=False)
    assert "\u202e" not in text.out and "\x9b" not in text.out and "\x1b" not in text.out
    assert "Art. 1.?txt.exe ?31m ?[2J" in text.out


def test_sender_refuses_a_bidi_file_name_or_title(small: Small, tmp_path: Path) -> None:
    spoof = tmp_path / "invoice\u202efdp.exe"
    spoof.write_bytes(b"MZ")
    refused = cli(small.home("na"), "send", "plenary", str(spoof))
    assert refused.code == 2 and refused.data["error"]["code"] == "unsafe_text"
    assert "U+202E" in refused.err and "\u202e" not in refused.err
    refused = cli(small.home("na"), "send", "plenary", "--text", "x", "--title", "a\x9bb")
    assert refused.code == 2 and refused.data["error"]["code"] == "unsafe_text"


def test_spoofed_file_name_from_a_sender_bypassing_the_checks_is_rejected(
    small: Small, tmp_path: Path
) -> None:
    """A modified client seals a file named with U+202E: the recipient refuses to open it
    (a committed payload that breaks the payload rules is the sender's fault,
    ``commitment_mismatch``, provable with a misbehaviour bundle) and nothing is saved."""
    payload = Payload(title="Invoice", file_name="x.txt", media_type="text/plain", file_data=b"x")
    object.__setattr__(payload, "file_name", "invoice\u202efdp.exe")

    async def send() -> int:
        async with DocketClient(small.home("na"), passphrase=PASSPHRASE) as client:
            return (await client.send("plenary", payload)).index

    index = asyncio.run(send())
    inbox = cli(small.home("sh"), "inbox")
    assert inbox.code == 1
    rejected = {r["index"]: r["code"] for r in inbox.data["rejected"]}
    assert rejected[index] == "commitment_mismatch"
    saved = tmp_path / "saved"
    assert cli(small.home("sh"), "read", str(index), "--save", str(saved)).code != 0
    assert not saved.exists() or list(saved.iterdir()) == []


def test_server_text_in_a_warning_is_made_terminal_safe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from client.cli import Context

    ctx = Context(argparse.Namespace(json=True, home=str(tmp_path), server=None))
    ctx.warn("server said \x9b31m\u202eevil\x1b]8;;http://x\x07 - showing the log")
    err = capsys.readouterr().err
    assert err.startswith("docket: warning: server said ?31m?evil?]8;;http://x?")
    assert all(c not in err for c in "\x9b\u202e\x1b\x07")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("report\u202efdp.exe", "report_fdp.exe"),  # RLO: would show as report.exe
        ("a\x9b31m.txt", "a_31m.txt"),  # C1 CSI
        ("a\u200b\u2066b\u2069.txt", "a__b_.txt"),  # zero-width space, bidi isolates
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("Com1.tar.gz", "_Com1.tar.gz"),
        ("LPT\u00b9", "_LPT\u00b9"),
        ("aux .txt", "_aux .txt"),
        ("console.txt", "console.txt"),
        ("notes. . ", "notes"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        ("Jose\u0301.txt", "Jos\u00e9.txt"),
    ],
)
def test_saved_file_names_cannot_spoof_an_extension_drive_a_terminal_or_name_a_device(
    given: str, expected: str
) -> None:
    assert safe_file_name(given) == expected


def test_join_with_an_unreadable_name_is_refused_before_anything(
    small: Small, tmp_path: Path
) -> None:
    code = ok(cli(small.home("nh"), "invite", "ne"))["code"]
    home = tmp_path / "ne"
    refused = cli(home, "join", code, "--name", "Eve\u202e")
    assert refused.code == 2 and refused.data["error"]["code"] == "bad_name"
    assert "U+202E" in refused.err


def test_join_with_a_lookalike_name_is_refused(small: Small, tmp_path: Path) -> None:
    """'Person na' with a Cyrillic a: the server refuses it at acceptance already."""
    code = ok(cli(small.home("nh"), "invite", "nf"))["code"]
    refused = cli(tmp_path / "nf", "join", code, "--name", "Person n\u0430")
    assert refused.code == 2, refused.err
    assert refused.data["error"]["code"] == "confusable_name"


def test_lookalike_channel_name_is_refused_by_the_roster(small: Small) -> None:
    refused = cli(small.home("med"), "channel", "create", "plenary2", "--name", "P1enary",
                  "--kind", "plenary", "--member", "med")  # fmt: skip
    assert refused.code == 2 and refused.data["error"]["code"] == "confusable_name"


# --- short invitation codes ---------------------------------------------------------------


def test_invite_prints_a_short_code_and_a_qr_and_join_takes_the_short_code(
    small: Small, tmp_path: Path
) -> None:
    shown = cli(small.home("nh"), "invite", "ng", as_json=False)
    assert shown.code == 0, shown.err
    assert "docket join " in shown.out and "--server" in shown.out
    blocks = [line for line in shown.out.splitlines() if line and set(line) <= set(" ▀▄█")]
    assert len(blocks) > 20 and len({len(b) for b in blocks}) == 1  # a square of blocks
    inv = ok(cli(small.home("nh"), "invite", "nh2", "--no-qr"))
    short = inv["short_code"]
    assert shortcode.short_code(inv["code"]) == short and len(short) == 19  # 16 + 3 dashes
    joined = ok(
        cli(tmp_path / "nh2", "--server", small.server.url, "join", short.lower(), "--name",
            "Second north adviser")
    )  # fmt: skip
    assert joined["talks_fingerprint"] == small.fingerprint


def test_mistyped_short_code_says_so_before_asking_the_server(small: Small, tmp_path: Path) -> None:
    short = ok(cli(small.home("nh"), "invite", "ni", "--no-qr"))["short_code"]
    data = short.replace("-", "")
    swapped = data[1] + data[0] + data[2:] if data[0] != data[1] else data[::-1]
    refused = cli(tmp_path / "ni", "join", swapped, "--name", "N I")  # no --server needed
    assert refused.code == 2, refused.err
    assert refused.data["error"]["code"] == "bad_short_code" and "mistyped" in refused.err
    # O for 0 and l for 1 are read as meant.
    assert shortcode.parse(short.replace("0", "O").replace("1", "l")) == data[:15]
    # A well-formed code the server does not know: said so, with what to do.
    other = shortcode.show("0" * 15)
    refused = cli(tmp_path / "ni", "--server", small.server.url, "join", other, "--name", "N I")
    assert refused.code == 2 and refused.data["error"]["code"] == "bad_short_code"
    assert "no open invitation" in refused.err
    # Without --server a short code cannot be looked up: said so.
    refused = cli(tmp_path / "nj", "join", short, "--name", "N J")
    assert refused.code == 2 and "--server" in refused.err


def test_substituted_invitation_behind_a_short_code_is_refused(
    small: Small, tmp_path: Path
) -> None:
    """The server answers a short code with another invitation (its own sealed box for
    another code): the joiner refuses it and pins nothing."""
    wanted = ok(cli(small.home("nh"), "invite", "nk", "--no-qr"))
    other = ok(cli(small.home("nh"), "invite", "nl", "--no-qr"))
    data_w = shortcode.parse(wanted["short_code"])
    data_o = shortcode.parse(other["short_code"])
    db = sqlite3.connect(small.server.data / "docket.db", timeout=10)
    try:
        with db:
            key = f"short:{b64e(shortcode.handle(data_o))}"
            (value,) = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            db.execute(
                "UPDATE meta SET value = ? WHERE key = ?",
                (value, f"short:{b64e(shortcode.handle(data_w))}"),
            )
    finally:
        db.close()
    home = tmp_path / "nk"
    refused = cli(home, "--server", small.server.url, "join", wanted["short_code"], "--name",
                  "N K")  # fmt: skip
    assert refused.code == 1, refused.err
    assert refused.data["error"]["code"] == "invitation_substituted"
    assert ok(cli(home, "whoami"))["talks"] is None  # nothing pinned


def test_substituted_code_sealed_under_the_right_key_is_refused() -> None:
    """Even a server that learned the short code (and so its key) cannot pass another
    invitation off under it: the full code's own short form must be the one typed."""
    from client.errors import VerificationError

    code = "docket-invite:the-real-one"
    data = shortcode.parse(shortcode.short_code(code))
    forged = crypto.seal_payload(
        crypto.sha256(b"docket/v1/short-key\x00" + data.encode()),
        b"docket-invite:another-one",
        b"docket/v1/short-sealed\x00",
        os.urandom,
    )
    with pytest.raises(VerificationError) as info:
        shortcode.open_sealed(data, forged)
    assert info.value.code == "invitation_substituted"
    _, _, sealed = shortcode.seal(code)
    assert shortcode.open_sealed(data, sealed) == code
