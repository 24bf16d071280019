"""``docket-server``: settings precedence, ``init``, and ``serve`` as a real process —
including a SIGKILL in the middle of a burst of writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import ssl
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from protocol import crypto, merkle
from protocol.crypto import Rng
from protocol.encoding import b64d, canonical
from protocol.ledger import Ledger
from protocol.receipt import Promise
from server.cli import main
from server.datadir import InitResult, init_data_dir
from server.settings import ConfigError, Settings
from tests.server.harness import ORIGIN, Harness, Person

REPO = Path(__file__).resolve().parents[2]

# --- settings -------------------------------------------------------------------------


def test_settings_precedence(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('[server]\nport = 9000\nhost = "127.0.0.2"\ncheckpoint_interval = 2.5\n')
    defaults = Settings.load(cli={"data": tmp_path}, env={})
    assert (defaults.host, defaults.port, defaults.checkpoint_interval) == ("127.0.0.1", 8470, 1.0)
    from_file = Settings.load(cli={"data": tmp_path}, env={}, config=config)
    assert (from_file.host, from_file.port, from_file.checkpoint_interval) == (
        "127.0.0.2",
        9000,
        2.5,
    )
    env = {"DOCKET_PORT": "9100", "DOCKET_MAX_BODY": "2048", "DOCKET_DATA": str(tmp_path)}
    from_env = Settings.load(cli={}, env=env, config=config)
    assert (from_env.port, from_env.max_body, from_env.host) == (9100, 2048, "127.0.0.2")
    from_cli = Settings.load(cli={"port": 9200, "host": None}, env=env, config=config)
    assert (from_cli.port, from_cli.host) == (9200, "127.0.0.2")


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        ({"DOCKET_PORT": "http"}, "", "setting port"),
        ({"DOCKET_PORT": "70000"}, "", "port must be"),
        ({"DOCKET_CHECKPOINT_INTERVAL": "nan"}, "", "checkpoint_interval"),
        ({"DOCKET_RATE": "-1"}, "", "rate must be positive"),
        ({}, "bogus = 1\n", "unknown setting"),
        ({}, "port = [\n", "not valid TOML"),
        ({"DOCKET_TLS_CERT": "/x.pem"}, "", "together"),
    ],
)
def test_bad_settings(tmp_path: Path, env: dict[str, str], toml: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        Settings.load(cli={"data": tmp_path}, env=env, config=config)


def test_settings_need_a_data_directory() -> None:
    with pytest.raises(ConfigError, match="data directory"):
        Settings.load(cli={}, env={})


# --- init -------------------------------------------------------------------------------


def test_init_creates_a_private_data_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["init", "--data", str(data), "--origin", ORIGIN, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["origin"] == ORIGIN
    assert out["data"] == str(data)
    token = b64d(out["founding_token"])
    log_key = b64d(out["log_key"])
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    key_file = data / "checkpoint.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    seed = b64d(key_file.read_text().strip())
    assert crypto.SigningKey(seed).public_bytes() == log_key
    conn = sqlite3.connect(data / "docket.db")
    stored = conn.execute("SELECT value FROM meta WHERE key = 'founding_token'").fetchone()[0]
    conn.close()
    assert stored == crypto.sha256(token)
    assert token not in (data / "docket.db").read_bytes()


def test_init_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--data", str(tmp_path / "d"), "--origin", ORIGIN]) == 0
    out = capsys.readouterr().out
    assert "founding token:" in out and "log key:" in out and ORIGIN in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["init", "--data", "{tmp}/d", "--origin", "bad origin"], "invalid origin"),
        (["init", "--data", "{tmp}", "--origin", ORIGIN], "not empty"),
        (["serve", "--data", "{tmp}/missing"], "not an initialised data directory"),
        (["serve"], "no data directory"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("DOCKET_DATA", raising=False)
    (tmp_path / "occupied").write_text("x")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


# --- serve as a process -------------------------------------------------------------


class Server:
    def __init__(self, proc: asyncio.subprocess.Process, url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log


@contextlib.asynccontextmanager
async def serving(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """Run ``python -m server.cli serve`` on port 0; yield once it listens."""
    log = data.parent / f"server-{time.monotonic_ns()}.log"
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DOCKET_LOG_LEVEL": "warning",
        "DOCKET_CHECKPOINT_INTERVAL": "0.05",
        "DOCKET_RATE": "100000",
        "DOCKET_RATE_BURST": "100000",
        "DOCKET_IP_RATE": "100000",
        "DOCKET_IP_BURST": "100000",
        **(env or {}),
    }
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--data",
            str(data),
            "--port",
            "0",
            *args,
            cwd=REPO,
            env=full_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.fullmatch(r"listening on (https?://\S+)\n", line)
        assert match is not None, (line, log.read_text())
        yield Server(proc, match.group(1), log)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_prints_its_port_and_stops_on_sigterm(tmp_path: Path, rng: Rng) -> None:
    data = tmp_path / "data"
    init = init_data_dir(data, ORIGIN)
    async with serving(data) as server:
        async with Harness.attach(server.url, data, init, rng) as h:
            await h.found()
            assert (await h.ok("GET", "/healthz"))["size"] == 1
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.proc.wait(), 20) == 0
    # The final checkpoint was written before exit.
    assert data.joinpath("checkpoint.txt").read_bytes().startswith(f"{ORIGIN}\n1\n".encode())


async def test_one_server_per_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, ORIGIN)
    async with serving(data) as server:
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--data",
            str(data),
            "--port",
            "0",
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 2
        assert out == b""
        assert err.decode().strip() == f"docket-server: another server is already serving {data}"
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.proc.wait(), 20) == 0


async def test_non_loopback_without_tls_warns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, ORIGIN)
    async with serving(data, "--host", "0.0.0.0") as server:  # noqa: S104
        assert server.url.startswith("http://0.0.0.0:")
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.proc.wait(), 20)
    assert "WARNING" in server.log.read_text()
    assert "without TLS" in server.log.read_text()


async def test_slow_request_heads_are_cut_off(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, ORIGIN)
    async with serving(data, env={"DOCKET_HEADER_TIMEOUT": "0.5"}) as server:
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        assert time.monotonic() - started < 5
        writer.close()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_serve_with_tls(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, ORIGIN)
    cert, key = _self_signed(tmp_path)
    async with serving(data, "--tls-cert", str(cert), "--tls-key", str(key)) as server:
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(cert))
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.url}/healthz", ssl=context) as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.proc.wait(), 20) == 0


async def _burst(h: Harness, senders: list[Person], acked: list[Promise], stop: float) -> None:
    async def chain(sender: Person) -> None:
        for i in range(500):
            if time.monotonic() > stop:
                return
            sealed = h.seal(sender, "plenary", f"{sender.member} #{i}")
            try:
                resp = await h.post_draft(sender, sealed)
                body = await resp.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                return
            if resp.status != 200:
                return
            acked.append(Promise.from_json(json.loads(body)["promise"]))

    await asyncio.gather(*(chain(s) for s in senders))


async def test_sigkill_mid_burst_loses_no_acknowledged_write(tmp_path: Path, rng: Rng) -> None:
    data = tmp_path / "data"
    init: InitResult = init_data_dir(data, ORIGIN)
    acked: list[Promise] = []
    async with serving(data) as server, Harness.attach(server.url, data, init, rng) as h:
        await h.standard_talks()
        head = h.people["n-head"]
        extra = [await h.add_member(head, f"n-m{i}") for i in range(3)]
        senders = [h.people[n] for n in ("n-adv", "s-adv", "s-head", "med")] + extra
        for s in senders:
            await h.token(s)
        burst = asyncio.create_task(_burst(h, senders, acked, time.monotonic() + 20))
        deadline = time.monotonic() + 15
        while len(acked) < 60 and time.monotonic() < deadline and not burst.done():
            await asyncio.sleep(0.01)
        server.proc.send_signal(signal.SIGKILL)  # mid-burst: requests are in flight
        await server.proc.wait()
        await asyncio.wait_for(burst, 20)
        people, genesis = h.people, h.genesis
    assert len(acked) >= 20, "too few writes were acknowledged to test anything"
    assert genesis is not None

    async with serving(data) as server:
        async with Harness.attach(server.url, data, init, rng) as h2:
            h2.people, h2.genesis, h2.ledger = people, genesis, Ledger(genesis)
            health = await h2.ok("GET", "/healthz")
            assert health["read_only"] is False
            # The restarted log replays (every signature and rule) through a fresh ledger.
            await h2.sync()
            entries = [
                canonical(e["entry"])
                for start in range(0, health["size"], 1000)
                for e in (
                    await h2.ok(
                        "GET",
                        f"/v1/log/entries?start={start}&end={start + 1000}",
                        person=people["med"],
                    )
                )["entries"]
            ]
            assert len(entries) == health["size"]
            tree = merkle.MemoryTree.from_entries(entries)
            for promise in acked:
                promise.verify(init.log_key)
                assert promise.index < len(entries)
                assert tree.leaf(promise.index) == promise.leaf
            cp, _, _ = await h2.checkpoint(health["size"])
            assert cp.root == tree.root(cp.size)
            for promise in acked[:: max(1, len(acked) // 10)]:
                got = await h2.ok(
                    "GET",
                    f"/v1/log/proof/inclusion?index={promise.index}&size={cp.size}",
                    person=people["med"],
                )
                merkle.verify_inclusion(
                    promise.leaf, promise.index, cp.size, [b64d(p) for p in got["proof"]], cp.root
                )
            # And it keeps accepting writes where the log left off.
            sender = people["n-adv"]
            sender.counter = h2.require_ledger().counters.get(sender.device, 0)
            await h2.send(sender, h2.seal(sender, "plenary", "after the crash"))
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.proc.wait(), 20) == 0
