"""The server pushes checkpoints to real witness daemons and serves their cosignatures.

A real ``docket-server serve`` subprocess (tests/client/serverproc.py) is configured with
``DOCKET_WITNESS_URLS`` for real ``python -m client.witnessd serve`` subprocesses whose
keys the genesis names as ``external`` witnesses.  Everything runs on loopback and every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from protocol import crypto
from protocol.checkpoint import Checkpoint, cosigners, open_checkpoint
from protocol.genesis import ExternalWitness, witness_name
from server.datadir import InitResult, init_data_dir
from server.settings import ConfigError, Settings
from tests.client.serverproc import ServerProc, serve_existing
from tests.client.witnessproc import WitnessProc, witness_init
from tests.server.harness import ORIGIN, Harness
from tests.server.promtext import value

WAIT = 20.0
"""Longest wait for cosignatures to show up (they take about a checkpoint interval)."""


@dataclass
class World:
    init: InitResult
    witnesses: dict[str, WitnessProc]
    keys: dict[str, bytes]
    server: ServerProc | None = None


def _witness(tmp: Path, init: InitResult, wid: str) -> tuple[str, WitnessProc, bytes]:
    key = base64.b64encode(init.log_key).decode()
    info = witness_init(tmp / f"witness-{wid}", wid, "--log", f"{ORIGIN}={key}")
    proc = WitnessProc(tmp / f"witness-{wid}").start()
    return witness_name(ORIGIN, wid), proc, base64.urlsafe_b64decode(info["key"] + "==")


@contextmanager
def blackhole() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung witness)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    init = init_data_dir(tmp_path / "data", ORIGIN)
    procs: dict[str, WitnessProc] = {}
    keys: dict[str, bytes] = {}
    try:
        for wid in ("w1", "w2"):
            name, proc, key = _witness(tmp_path, init, wid)
            procs[name], keys[name] = proc, key
        urls = ",".join(f"{name}={proc.url}" for name, proc in procs.items())
        monkeypatch.setenv("DOCKET_WITNESS_URLS", urls)
        monkeypatch.setenv("DOCKET_WITNESS_REFRESH", "1")
        monkeypatch.setenv("DOCKET_WITNESS_TIMEOUT", "1")
        yield World(init=init, witnesses=procs, keys=keys)
    finally:
        for proc in procs.values():
            proc.stop()


@asynccontextmanager
async def talks(
    world: World, rng: crypto.Rng, *, extra: dict[str, bytes] | None = None
) -> AsyncIterator[Harness]:
    """Serve the data directory and found talks naming the witnesses as external."""
    world.server = serve_existing(world.init.data)
    try:
        async with Harness.attach(world.server.url, world.init.data, world.init, rng) as h:
            named = {**world.keys, **(extra or {})}
            external = tuple(ExternalWitness(name=n, key=k) for n, k in named.items())
            await h.found(quorum=2, external=external)
            yield h
    finally:
        world.server.stop()


async def cosigned(
    h: Harness, world: World, min_size: int, *, after: dict[str, int] | None = None
) -> tuple[Checkpoint, dict[str, int]]:
    """Poll the served checkpoint until it covers ``min_size`` entries and carries a valid
    cosignature by every witness (newer than ``after``, when given)."""
    deadline = time.monotonic() + WAIT
    found_: dict[str, int] = {}
    while time.monotonic() < deadline:
        resp = await h.request("GET", "/v1/log/checkpoint", person=h.people["med"])
        note = await resp.read()
        if resp.status == 200:
            cp, signed = open_checkpoint(
                note, origin=ORIGIN, log_name=ORIGIN, log_key=world.init.log_key
            )
            found_ = cosigners(cp, signed, world.keys)
            fresh = all(found_.get(n, -1) > (after or {}).get(n, -1) for n in world.keys)
            if cp.size >= min_size and set(found_) == set(world.keys) and fresh:
                return cp, found_
        await asyncio.sleep(0.05)
    raise AssertionError(f"no checkpoint of {min_size} entries cosigned by all: {found_}")


async def test_checkpoints_gain_the_witnesses_cosignatures(world: World, rng: crypto.Rng) -> None:
    async with talks(world, rng) as h:
        cp, _ = await cosigned(h, world, 1)
        assert cp.size == 1
        start = time.monotonic()
        await h.add_delegation("north", "n-head")
        await h.add_delegation("south", "s-head")
        cp, _ = await cosigned(h, world, 3)
        assert time.monotonic() - start < 10
        metrics = await (await h.request("GET", "/metrics")).text()
        for name in world.keys:
            assert value(metrics, "docket_witness_cosignatures_total", witness=name)
            assert value(metrics, "docket_witness_push_seconds_count", witness=name)


async def test_quiet_log_gets_fresh_cosignature_timestamps(world: World, rng: crypto.Rng) -> None:
    async with talks(world, rng) as h:
        await h.add_delegation("north", "n-head")
        cp, first = await cosigned(h, world, 2)
        later_cp, later = await cosigned(h, world, 2, after=first)
        assert later_cp == cp  # the same checkpoint, cosigned again at a later second
        assert all(later[n] > first[n] for n in world.keys)


async def test_dead_and_hung_witnesses_stall_nothing(
    world: World, rng: crypto.Rng, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dead_name, dead, dead_key = _witness(tmp_path, world.init, "dead")
    dead.stop()
    hung_key = crypto.SigningKey.generate(rng).public_bytes()
    hung_name = witness_name(ORIGIN, "hung")
    with blackhole() as hung_url:
        urls = ",".join(
            [f"{n}={p.url}" for n, p in world.witnesses.items()]
            + [f"{dead_name}={dead.url}", f"{hung_name}={hung_url}"]
        )
        monkeypatch.setenv("DOCKET_WITNESS_URLS", urls)
        async with talks(world, rng, extra={dead_name: dead_key, hung_name: hung_key}) as h:
            start = time.monotonic()
            for i in range(4):
                await h.add_delegation(f"d{i}", f"d{i}-head")
            assert time.monotonic() - start < 5  # writes never wait for witnesses
            await cosigned(h, world, 5)
            assert time.monotonic() - start < 10
            wanted = [
                f'reason="unreachable",witness="{dead_name}"',
                f'reason="timeout",witness="{hung_name}"',
            ]
            deadline = time.monotonic() + WAIT
            metrics = ""
            while time.monotonic() < deadline:
                metrics = await (await h.request("GET", "/metrics")).text()
                if all(w in metrics for w in wanted):
                    break
                await asyncio.sleep(0.2)
            assert all(w in metrics for w in wanted), metrics
            assert world.server is not None
            assert any(dead_name in line for line in world.server.output)


async def test_store_older_than_a_witness_starts_read_only(
    world: World, rng: crypto.Rng, tmp_path: Path
) -> None:
    """A server started on an older copy of its data (an old backup) must not sign a
    checkpoint that forks from what the witnesses cosigned: it stays read-only."""
    async with talks(world, rng) as h:
        await h.add_delegation("north", "n-head")
        await cosigned(h, world, 2)
        assert world.server is not None
        world.server.stop()
        backup = tmp_path / "backup"
        shutil.copytree(world.init.data, backup)
        world.server = serve_existing(world.init.data)
        h.base = world.server.url
        h.tokens.clear()
        await h.add_delegation("south", "s-head")
        await h.add_delegation("east", "e-head")
        await cosigned(h, world, 4)
    restored = serve_existing(backup)
    try:
        async with Harness.attach(restored.url, backup, world.init, rng) as r:
            health = await r.ok("GET", "/healthz")
            assert health["read_only"] is True
            assert health["size"] == 2
        lines = [line for line in restored.output if "older backup" in line]
        assert len(lines) == 1
        assert "4 entries" in lines[0] and "only 2" in lines[0]
    finally:
        restored.stop()


async def test_witness_init_from_a_server_checks_the_talks_fingerprint(
    world: World, rng: crypto.Rng, tmp_path: Path
) -> None:
    async with talks(world, rng) as h:
        assert world.server is not None and h.genesis is not None
        info = witness_init(
            tmp_path / "observer", "obs", "--server", world.server.url,
            "--talks", h.genesis.fingerprint,
        )  # fmt: skip
        assert info["logs"][0]["origin"] == ORIGIN
        with pytest.raises(Exception, match="exit status 1"):
            witness_init(
                tmp_path / "observer2", "obs", "--server", world.server.url,
                "--talks", "00000 00000 00000 00000 00000 00000 00000 00000",
            )  # fmt: skip


def test_witness_urls_come_from_toml_or_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "docket.toml"
    config.write_text('[server.witness_urls]\n"t/witness/a" = "http://127.0.0.1:9001/"\n')
    settings = Settings.load(cli={"data": tmp_path}, env={}, config=config)
    assert settings.witness_url_map == {"t/witness/a": "http://127.0.0.1:9001"}
    env = {"DOCKET_WITNESS_URLS": "t/witness/a=http://127.0.0.1:1, t/witness/b=https://w.example"}
    settings = Settings.load(cli={"data": tmp_path}, env=env)
    assert settings.witness_url_map == {
        "t/witness/a": "http://127.0.0.1:1",
        "t/witness/b": "https://w.example",
    }
    for bad in ("a=ftp://x", "a=http://x,a=http://y", "no-url", "a b=http://x"):
        with pytest.raises(ConfigError):
            Settings.load(cli={"data": tmp_path}, env={"DOCKET_WITNESS_URLS": bad})
