"""``python -m bench load``: the delegation workload against a real ``docket-server``.

Theory of operation
-------------------
1. Baselines, measured in this very run so ratios mean something on any machine: the
   raw Ed25519 verify rate (:func:`protocol.crypto.verify` in a loop) and the rate of a
   bare aiohttp app answering 2 KiB JSON POSTs (a subprocess, hit by the same client
   worker processes as the real server).
2. Each measured run starts ``python -m server.cli init``/``serve --port 0`` on a fresh
   temporary data directory (normal ``synchronous=FULL`` durable writes) and sets up
   talks with :mod:`protocol` functions only: genesis (``POST /v1/talks``), three
   delegations of a head and three members, the mediator, one working-group channel
   with all of them — 13 devices — and a bearer token for every device.
3. Client worker processes (``python -m bench.load worker``, config on stdin) each own
   some of the devices.  Every device holds a WebSocket; senders seal 2 KiB drafts end
   to end (:func:`protocol.envelope.seal`) and POST them, one in flight per device (the
   per-sender counter must arrive in order); every one of the 12 other devices learns of
   each draft from its WebSocket, takes the draft from the notice (inline) or fetches
   it, opens and verifies it (:func:`protocol.envelope.open_draft`) and posts its signed
   ``received`` receipt, batched per request.
4. The parent waits until the log holds every draft and its 12 receipts, then collects
   per-draft timestamps (CLOCK_MONOTONIC is system-wide, so processes compare) and the
   server's and workers' CPU time.

Large logs: ``--store DIR`` runs the same workload again on a copy of a store built by
``python -m bench proofs --entries N`` (e.g. ``/tmp/docket-bench-1000000``): tokens for
13 of its devices (three delegations of four, and the mediator) are written into the
copy, a working-group channel with them is opened through the API, and each sender
continues from its last logged counter.  So drafts/s, CPU per entry and RSS compare
between a fresh log and one of N entries in the same invocation (with ``--compare``
too, the other checkout's server also runs on the store).

Modes: the max-rate run is closed loop (each sender sends as soon as its last draft is
promised); the latency run is open loop at ``--rate`` drafts/s (default: half the max
rate just measured).  Delivery latency is "sender got the promise -> a recipient got the
notice"; it is negative when the notice beats the HTTP answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.audit_bench import ORIGIN as STORE_ORIGIN
from bench.audit_bench import _seed, device_keys
from bench.proofs import build_store
from protocol import crypto
from protocol.encoding import b64d, b64e, canonical
from protocol.envelope import (
    DraftHeader,
    Payload,
    encode_upload,
    keys_from_json,
    open_draft,
    seal,
)
from protocol.genesis import WitnessPolicy, found
from protocol.keys import DeviceId, DeviceKeys, DevicePublic
from protocol.ledger import Ledger
from protocol.receipt import RECEIVED, make_receipt
from protocol.records import DraftId, MessageId, sign_record
from protocol.roster import ChangeArgs, make_change
from server.services.recovery import recover_txn
from server.settings import DB_FILE
from server.storage.auth import insert_token_txn
from server.storage.db import connect, run_txn

REPO = Path(__file__).resolve().parents[1]
ORIGIN = "bench.docket.test/load"
CHANNEL = "wg"
DELEGATIONS = ("d1", "d2", "d3")
MEMBERS_PER_DELEGATION = 3  # besides the head
PAYLOAD_SIZE = 2048
TICK = os.sysconf("SC_CLK_TCK")
JSON_HEADERS = {"Content-Type": "application/json"}


# --- process accounting -------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the server's verification workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (``/proc/<pid>/stat`` fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of ``pid`` alone and of its whole process tree."""
    return cpu_seconds(pid), sum(cpu_seconds(p) for p in _tree(pid))


def rss_mib(pid: int) -> float:
    """VmRSS of ``pid`` and its descendants, MiB."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# --- the server subprocess ----------------------------------------------------------


@dataclass(slots=True)
class Server:
    proc: asyncio.subprocess.Process
    url: str
    init: dict[str, str] = field(default_factory=dict)
    data: Path | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid


SERVER_ENV = {
    "DOCKET_LOG_LEVEL": "warning",
    "DOCKET_RATE": "1000000",
    "DOCKET_RATE_BURST": "1000000",
    "DOCKET_IP_RATE": "1000000",
    "DOCKET_IP_BURST": "1000000",
}


InitHook = Callable[[dict[str, str]], Awaitable[dict[str, str]]]
"""Called with what ``init`` printed, before ``serve``; returns more server environment."""


@contextlib.asynccontextmanager
async def docket_server(
    extra_env: dict[str, str] | None = None,
    repo: Path = REPO,
    store: Path | None = None,
    on_init: InitHook | None = None,
) -> AsyncIterator[Server]:
    """``server.cli init`` + ``serve --port 0`` on a fresh data directory, running the
    server code of the checkout ``repo`` (another one for ``--compare``); with ``store``,
    ``serve`` on a copy of that data directory instead (``Server.init`` is then empty).
    ``on_init`` may start more processes (witnesses) and add to the environment."""
    env = {**os.environ, "PYTHONPATH": str(repo), **SERVER_ENV, **(extra_env or {})}
    with tempfile.TemporaryDirectory(prefix="docket-bench-") as tmp:
        data = Path(tmp) / "data"
        if store is not None:
            await asyncio.to_thread(shutil.copytree, store, data)
            await asyncio.to_thread(_store_tokens, data)
            async with _serving(data, repo, env) as server:
                yield Server(proc=server, url=await _listening(server), init={}, data=data)
            return
        init = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            "init",
            "--data",
            str(data),
            "--origin",
            ORIGIN,
            "--json",
            cwd=repo,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await init.communicate()
        if init.returncode != 0:
            raise RuntimeError("docket-server init failed")
        info = json.loads(out)
        if on_init is not None:
            env.update(await on_init(info))
        async with _serving(data, repo, env) as proc:
            url = await _listening(proc)
            yield Server(proc=proc, url=url, init=info, data=data)


@contextlib.asynccontextmanager
async def _serving(
    data: Path, repo: Path, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    prefix = os.environ.get("BENCH_SERVER_PREFIX", "").split()
    proc = await asyncio.create_subprocess_exec(
        *(prefix or [sys.executable]),
        "-m",
        "server.cli",
        "serve",
        "--data",
        str(data),
        "--port",
        "0",
        cwd=repo,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    async with _terminating(proc):
        yield proc


@contextlib.asynccontextmanager
async def _terminating(proc: asyncio.subprocess.Process) -> AsyncIterator[None]:
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _listening(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            raise RuntimeError("the server exited before listening")
        if line.startswith("listening on "):
            return line.split()[-1]


# --- talks setup (protocol functions only) --------------------------------------------

Monitor = Callable[["Server", "Talks", asyncio.Event], Coroutine[Any, Any, Any]]
"""Watches a :func:`workload` run until the event is set; returns what it saw."""


@dataclass(slots=True)
class Talks:
    """Everything a client worker needs (JSON-serialisable through :meth:`to_json`)."""

    url: str
    devices: list[DeviceKeys]
    names: list[str]
    tokens: list[str]
    talks: bytes
    roster: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "devices": [d.private_bytes().hex() for d in self.devices],
            "names": self.names,
            "tokens": self.tokens,
            "talks": b64e(self.talks),
            "roster": b64e(self.roster),
        }


async def _ok(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], token: str | None = None
) -> Any:
    headers = dict(JSON_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with session.post(url, data=canonical(body), headers=headers) as resp:
        got = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST {url}: {resp.status} {got[:300]!r}")
        return json.loads(got)


async def setup_talks(server: Server, witness: WitnessPolicy | None = None) -> Talks:
    """Found the talks, enrol 3 delegations x 4 members, open the channel, log everyone in.

    ``witness`` is the genesis witness policy (default: quorum 1, no external witness)."""
    rng = os.urandom
    url = server.url
    mediator = DeviceKeys.generate(rng)
    genesis = found(
        mediator_keys=mediator,
        mediator="med",
        mediator_name="Mediator",
        origin=ORIGIN,
        title="Load benchmark",
        log_key=b64d(server.init["log_key"]),
        witness=witness or WitnessPolicy(quorum=1),
        time=int(time.time() * 1000),
    )
    ledger = Ledger(genesis)
    devices, names = [mediator], ["med"]
    async with aiohttp.ClientSession() as session:
        await _ok(
            session,
            f"{url}/v1/talks",
            {"genesis": genesis.to_json(), "token": server.init["founding_token"]},
        )

        async def login(keys: DeviceKeys) -> str:
            got = await _ok(session, f"{url}/v1/auth/challenge", {"device": b64e(keys.device_id)})
            signed = sign_record(
                keys.signing,
                crypto.CTX_AUTH,
                {
                    "challenge": got["challenge"],
                    "device": b64e(keys.device_id),
                    "origin": ORIGIN,
                    "talks": b64e(ledger.talks),
                },
            )
            answer = await _ok(
                session,
                f"{url}/v1/auth/token",
                {"challenge": got["challenge"], "device": signed["device"], "sig": signed["sig"]},
            )
            return str(answer["token"])

        tokens = {"med": await login(mediator)}

        async def change(author: str, keys: DeviceKeys, op: str, args: ChangeArgs) -> None:
            entry = make_change(
                author=keys,
                roster=ledger.roster,
                op=op,
                args=args,
                time=int(time.time() * 1000),
            )
            await _ok(session, f"{url}/v1/roster", entry.to_json(), tokens[author])
            ledger.apply_entry(entry)

        for delegation in DELEGATIONS:
            head = DeviceKeys.generate(rng)
            head_id = f"{delegation}-head"
            await change(
                "med",
                mediator,
                "delegation.create",
                ChangeArgs(
                    delegation=delegation,
                    name=delegation.upper(),
                    member=head_id,
                    member_name=head_id,
                    devices=(head.public,),
                ),
            )
            tokens[head_id] = await login(head)
            devices.append(head)
            names.append(head_id)
            for i in range(MEMBERS_PER_DELEGATION):
                member = DeviceKeys.generate(rng)
                member_id = f"{delegation}-m{i}"
                await change(
                    head_id,
                    head,
                    "member.enrol",
                    ChangeArgs(
                        delegation=delegation,
                        member=member_id,
                        member_name=member_id,
                        devices=(member.public,),
                    ),
                )
                devices.append(member)
                names.append(member_id)
        await change(
            "med",
            mediator,
            "channel.create",
            ChangeArgs(
                channel=CHANNEL,
                name="Working group",
                kind="working_group",
                delegations=DELEGATIONS,
                members=("med",),
            ),
        )
        for name, keys in zip(names, devices, strict=True):
            if name not in tokens:
                tokens[name] = await login(keys)
    if len(ledger.roster.channel_devices(CHANNEL)) != len(devices):
        raise RuntimeError("the channel does not hold every device")
    return Talks(
        url=url,
        devices=devices,
        names=names,
        tokens=[tokens[n] for n in names],
        talks=ledger.talks,
        roster=ledger.roster.head,
    )


# --- the same workload on a large existing log (``--store``) ------------------------------
# A store built by ``python -m bench proofs --entries N`` holds the talks of
# :func:`bench.audit_bench.build_log` (deterministic keys per member name).  Three of its
# delegations (4 devices each) and the mediator are the 13 devices: a new working-group
# channel with them is opened through the API, so every figure is the fresh-log
# workload's, on top of N entries.

STORE_DELEGATIONS = ("beta", "delta", "gamma")


def _store_names() -> list[str]:
    names = ["mediator"]
    for d in STORE_DELEGATIONS:
        names += [f"{d}-head"] + [f"{d}-{i}" for i in range(MEMBERS_PER_DELEGATION)]
    return names


def _store_token(name: str) -> bytes:
    return crypto.sha256(b"docket/bench/load-token\x00" + name.encode())


def _store_tokens(data: Path) -> None:
    """Give each of the 13 devices a bearer token in the copied store (server stopped)."""
    conn = connect(data / DB_FILE)
    try:
        for name in _store_names():
            token = _store_token(name)
            run_txn(
                conn,
                insert_token_txn,
                crypto.sha256(token),
                bytes(device_keys(name).device_id),
                2**62,
                0,
            )
    finally:
        conn.close()


def _store_ledger(data: Path) -> Ledger:
    conn = connect(data / DB_FILE, readonly=True)
    try:
        conn.execute("BEGIN")
        got = recover_txn(
            conn,
            origin=STORE_ORIGIN,
            log_public=crypto.SigningKey(_seed("log")).public_bytes(),
            checkpoint_file=None,
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    if got.problem is not None or got.ledger is None:
        raise RuntimeError(f"the store does not recover: {got.problem}")
    return got.ledger


async def setup_store_talks(server: Server, data: Path) -> tuple[Talks, dict[int, int]]:
    """Open the 13-device channel on a copied large store; the senders' next counters."""
    ledger = await asyncio.to_thread(_store_ledger, data)
    names = _store_names()
    devices = [device_keys(n) for n in names]
    tokens = [b64e(_store_token(n)) for n in names]
    change = make_change(
        author=devices[0],
        roster=ledger.roster,
        op="channel.create",
        args=ChangeArgs(
            channel=CHANNEL,
            name="Working group",
            kind="working_group",
            delegations=STORE_DELEGATIONS,
            members=("mediator",),
        ),
        time=int(time.time() * 1000),
    )
    async with aiohttp.ClientSession() as session:
        await _ok(session, f"{server.url}/v1/roster", change.to_json(), tokens[0])
    ledger.apply_entry(change)
    if sorted(ledger.roster.channel_devices(CHANNEL)) != sorted(d.device_id for d in devices):
        raise RuntimeError("the channel does not hold exactly the 13 devices")
    counters = {i: ledger.counters.get(d.device_id, 0) for i, d in enumerate(devices)}
    talks = Talks(
        url=server.url,
        devices=devices,
        names=names,
        tokens=tokens,
        talks=ledger.talks,
        roster=ledger.roster.head,
    )
    return talks, counters


async def log_size(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/healthz") as resp:
        return int((await resp.json())["size"])


async def metric_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/metrics") as resp:
        return await resp.text()


# --- the client worker process -------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Device:
    keys: DeviceKeys
    token: str
    pending: list[tuple[int, dict[str, Any] | None]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    promised: dict[int, float] = field(default_factory=dict)
    notified: dict[int, float] = field(default_factory=dict)
    receipted: dict[int, float] = field(default_factory=dict)
    receipt_posts: int = 0
    inflight: asyncio.Future[None] | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class _Worker:
    """One client process: some devices of the talks, their senders and recipients."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url: str = config["url"]
        everyone = [DeviceKeys.from_private_bytes(bytes.fromhex(h)) for h in config["devices"]]
        self.publics: dict[DeviceId, DevicePublic] = {d.device_id: d.public for d in everyone}
        self.channel_devices = tuple(sorted(self.publics))
        self.talks = b64d(config["talks"])
        self.roster = b64d(config["roster"])
        self.mine = [_Device(keys=everyone[i], token=config["tokens"][i]) for i in config["mine"]]
        counters = config.get("counters", {})
        self.counters = [int(counters.get(str(i), 0)) for i in config["mine"]]
        self.senders = set(config["senders"])
        self.rate: float | None = config.get("rate")  # drafts/s per sender, None: closed loop
        self.quota: int = config["quota"]  # drafts per sender
        self.seconds: float = config["seconds"]
        self.inline: bool = config.get("inline", True)
        self.payload = Payload(title="bench", body="x" * PAYLOAD_SIZE)
        self.errors: list[str] = []
        self.finish = asyncio.Event()
        self.draining = False

    async def run(self) -> dict[str, Any]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            self.session = session
            sockets = [
                await session.ws_connect(
                    f"{self.url}/v1/ws?after=0{'&inline=1&batch=1' if self.inline else ''}",
                    headers=d.auth,
                    max_msg_size=0,
                )
                for d in self.mine
            ]
            pairs = zip(self.mine, sockets, strict=True)
            tasks = [asyncio.create_task(self._listen(d, ws)) for d, ws in pairs]
            tasks += [asyncio.create_task(self._recipient(d)) for d in self.mine]
            _say("ready")
            start = float((await _read_line()).split()[1])
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            cpu0 = time.process_time()
            n = len(self.mine)
            await asyncio.gather(
                *(
                    self._sender(d, phase=k / max(1, n))
                    for k, d in enumerate(self.mine)
                    if self.mine.index(d) in self.senders
                )
            )
            _say(f"sent {sum(d.sent for d in self.mine)}")
            await _read_line()  # "finish": the log holds everything
            cpu = time.process_time() - cpu0
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for ws in sockets:
                await ws.close()
        return {
            "cpu": cpu,
            "errors": self.errors[:20],
            "devices": {
                b64e(d.keys.device_id): {
                    "promised": d.promised,
                    "notified": d.notified,
                    "receipted": d.receipted,
                    "receipt_posts": d.receipt_posts,
                }
                for d in self.mine
            },
        }

    async def _sender(self, dev: _Device, *, phase: float) -> None:
        deadline = time.monotonic() + self.seconds
        interval = None if not self.rate else 1.0 / self.rate
        next_at = time.monotonic() + (phase * interval if interval else 0.0)
        counter = self.counters[self.mine.index(dev)]  # the sender's last logged counter
        while dev.sent < self.quota and time.monotonic() < deadline:
            if interval is not None:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            counter += 1
            sealed = seal(
                sender=dev.keys,
                talks=self.talks,  # type: ignore[arg-type]
                channel=CHANNEL,
                counter=counter,
                msg=MessageId(os.urandom(16)),
                draft=DraftId(os.urandom(16)),
                version=1,
                parents=(),
                roster=self.roster,  # type: ignore[arg-type]
                recipients=self.publics,
                payload=self.payload,
                time=int(time.time() * 1000),
                rng=os.urandom,
            )
            dev.inflight = asyncio.get_running_loop().create_future()
            try:
                async with self.session.post(
                    f"{self.url}/v1/drafts", data=encode_upload(sealed), headers=dev.auth
                ) as resp:
                    got = await resp.read()
                    if resp.status != 200:
                        self.errors.append(f"draft: {resp.status} {got[:200]!r}")
                        return
                dev.promised[int(json.loads(got)["promise"]["index"])] = time.monotonic()
                dev.sent += 1
            except aiohttp.ClientError as exc:
                self.errors.append(f"draft: {exc!r}")
                return
            finally:
                dev.inflight.set_result(None)
                dev.inflight = None

    async def _listen(self, dev: _Device, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            now = time.monotonic()
            got = json.loads(msg.data)
            for notice in got if isinstance(got, list) else [got]:
                if notice["kind"] != "draft":
                    continue
                index = int(notice["index"])
                dev.notified[index] = now
                dev.pending.append((index, notice.get("draft")))
            dev.wake.set()

    async def _recipient(self, dev: _Device) -> None:
        while True:
            await dev.wake.wait()
            dev.wake.clear()
            batch, dev.pending = dev.pending, []
            opened = await asyncio.gather(*(self._open(dev, i, inline) for i, inline in batch))
            receipts = [r for r in opened if r is not None]
            for k in range(0, len(receipts), 256):
                chunk = receipts[k : k + 256]
                body = b'{"receipts":[' + b",".join(r.raw for _, r in chunk) + b"]}"
                try:
                    async with self.session.post(
                        f"{self.url}/v1/receipts", data=body, headers={**dev.auth, **JSON_HEADERS}
                    ) as resp:
                        got = await resp.read()
                        if resp.status != 200:
                            self.errors.append(f"receipts: {resp.status} {got[:200]!r}")
                            continue
                except aiohttp.ClientError as exc:
                    self.errors.append(f"receipts: {exc!r}")
                    continue
                now = time.monotonic()
                dev.receipt_posts += 1
                for index, _ in chunk:
                    dev.receipted[index] = now

    async def _open(
        self, dev: _Device, index: int, inline: dict[str, Any] | None
    ) -> tuple[int, Any] | None:
        try:
            if inline is None and dev.inflight is not None and index not in dev.promised:
                await asyncio.shield(dev.inflight)  # is it our own draft? (no GET needed)
            if index in dev.promised:
                return None
            if inline is None:
                async with self.session.get(
                    f"{self.url}/v1/drafts/{index}", headers=dev.auth
                ) as resp:
                    meta = json.loads(await resp.read())
                header = DraftHeader.from_json(meta["header"])
                if header.sender == dev.keys.device_id:
                    return None
                async with self.session.get(
                    f"{self.url}/v1/drafts/{index}/ciphertext", headers=dev.auth
                ) as resp:
                    ciphertext = await resp.read()
                keys = keys_from_json(meta["keys"])
            else:
                header = DraftHeader.from_json(inline["header"])
                if header.sender == dev.keys.device_id:
                    return None
                keys = keys_from_json(inline["keys"])
                ciphertext = b64d(inline["ciphertext"])
            open_draft(
                header,
                keys,
                ciphertext,
                me=dev.keys,
                talks=self.talks,
                sender=self.publics[header.sender],
                recipients=self.channel_devices,
            )
            receipt = make_receipt(
                device=dev.keys,
                header=header,
                index=index,
                kind=RECEIVED,
                time=int(time.time() * 1000),
            )
        except Exception as exc:
            self.errors.append(f"open {index}: {exc!r}")
            return None
        return index, receipt


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def _bare_worker(config: dict[str, Any]) -> dict[str, Any]:
    """POST 2 KiB JSON bodies at the bare app as fast as ``concurrency`` chains go."""
    body = canonical({"data": "x" * PAYLOAD_SIZE, "n": 1})
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        _say("ready")
        start = float((await _read_line()).split()[1])
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        cpu0 = time.process_time()
        deadline = time.monotonic() + config["seconds"]

        async def chain() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with session.post(config["url"], data=body, headers=JSON_HEADERS) as resp:
                    await resp.read()
                done += 1

        await asyncio.gather(*(chain() for _ in range(config["concurrency"])))
        cpu = time.process_time() - cpu0
        _say("sent 0")
        await _read_line()
    return {"cpu": cpu, "posts": done}


def worker_main() -> int:
    """``python -m bench.load worker``: config JSON on the first stdin line."""
    config = json.loads(sys.stdin.readline())
    if config.get("mode") == "bare":
        result = asyncio.run(_bare_worker(config))
    else:
        result = asyncio.run(_Worker(config).run())
    _say("result " + json.dumps(result))
    return 0


# --- the bare aiohttp baseline server ------------------------------------------------


async def _bare_post(request: web.Request) -> web.Response:
    value = json.loads(await request.read())
    return web.json_response({"ok": isinstance(value, dict)})


def bare_main() -> int:
    """``python -m bench.load bare-server``: a trivial aiohttp app on a free port."""

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/echo", _bare_post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        _say(f"listening on http://127.0.0.1:{port}")
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


# --- driving workers -------------------------------------------------------------------


async def _spawn_workers(configs: Sequence[dict[str, Any]]) -> list[asyncio.subprocess.Process]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    for config in configs:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load",
            "worker",
            cwd=REPO,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(config).encode() + b"\n")
        await proc.stdin.drain()
        procs.append(proc)
    return procs


async def _expect(proc: asyncio.subprocess.Process, word: str, timeout: float = 60) -> str:
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode()
    if not line.startswith(word):
        raise RuntimeError(f"worker said {line[:200]!r}, expected {word!r}")
    return line[len(word) :].strip()


async def _tell(procs: Sequence[asyncio.subprocess.Process], line: str) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(line.encode() + b"\n")
        await proc.stdin.drain()


async def _profile(pid: int, seconds: float, name: str) -> asyncio.subprocess.Process | None:
    """``BENCH_PYSPY=PREFIX``: sample the server with py-spy (speedscope, subprocesses)."""
    prefix = os.environ.get("BENCH_PYSPY")
    if not prefix:
        return None
    return await asyncio.create_subprocess_exec(
        "py-spy",
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--threads",
        "--rate",
        "250",
        "--duration",
        str(max(1, int(seconds))),
        "--format",
        "raw",
        "--output",
        f"{prefix}-{name}.txt",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


async def workload(
    *,
    seconds: float,
    drafts: int,
    rate: float | None,
    clients: int,
    inline: bool = True,
    server_env: dict[str, str] | None = None,
    repo: Path = REPO,
    store: Path | None = None,
    on_init: InitHook | None = None,
    witness: Callable[[], WitnessPolicy] | None = None,
    monitor: Monitor | None = None,
) -> dict[str, Any]:
    """One measured run of the delegation workload on a fresh server (module doc), or
    on a copy of the large ``store``.

    ``on_init`` goes to :func:`docket_server`; ``witness()``, called after it, gives the
    genesis witness policy to :func:`setup_talks`;
    ``monitor`` runs from the start of the load until the log holds everything, and its
    result is in the summary's ``"monitor"`` with every draft's promise time in
    ``"promised"`` (log index -> CLOCK_MONOTONIC seconds)."""
    async with docket_server(server_env, repo, store, on_init) as server:
        counters: dict[int, int] = {}
        if store is None:
            talks = await setup_talks(server, None if witness is None else witness())
        else:
            assert server.data is not None
            talks, counters = await setup_store_talks(server, server.data)
        n = len(talks.devices)
        per_sender = max(1, drafts // n)
        base = talks.to_json()
        configs = [
            {
                **base,
                "counters": {str(i): counters.get(i, 0) for i in range(n)},
                "mine": list(range(c, n, clients)),
                "senders": list(range(len(range(c, n, clients)))),
                "rate": None if rate is None else rate / n,
                "quota": per_sender,
                "seconds": seconds,
                "inline": inline,
            }
            for c in range(clients)
        ]
        procs = await _spawn_workers(configs)
        try:
            async with aiohttp.ClientSession() as session:
                for proc in procs:
                    await _expect(proc, "ready")
                size0 = await log_size(session, server.url)
                spy = await _profile(server.pid, seconds, "max" if rate is None else "rate")
                cpu0 = tree_cpu(server.pid)
                go = time.monotonic() + 0.2
                stop_monitor = asyncio.Event()
                watching: asyncio.Task[Any] | None = (
                    None
                    if monitor is None
                    else asyncio.create_task(monitor(server, talks, stop_monitor))
                )
                await _tell(procs, f"go {go}")
                sent = 0
                for proc in procs:
                    sent += int(await _expect(proc, "sent", timeout=seconds + 120))
                target = size0 + sent * n
                drain_deadline = time.monotonic() + 30
                size = size0
                while time.monotonic() < drain_deadline:
                    size = await log_size(session, server.url)
                    if size >= target:
                        break
                    await asyncio.sleep(0.02)
                end = time.monotonic()
                stop_monitor.set()
                watched = None if watching is None else await watching
                cpu1 = tree_cpu(server.pid)
                rss = rss_mib(server.pid)
                metrics = await metric_text(session, server.url)
                await _tell(procs, "finish")
                if spy is not None:
                    await spy.wait()
                results = [json.loads(await _expect(proc, "result", timeout=60)) for proc in procs]
        finally:
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                await proc.wait()
    summary = _summarise(
        results,
        n=n,
        go=go,
        end=end,
        sent=sent,
        entries=size - size0,
        target_missing=max(0, target - size),
        server_cpu=(cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]),
        rss=rss,
        metrics=metrics,
        rate=rate,
    )
    if monitor is not None:
        summary["monitor"] = watched
        summary["promised"] = {
            int(index): t
            for r in results
            for d in r["devices"].values()
            for index, t in d["promised"].items()
        }
    return summary


def _summarise(
    results: list[dict[str, Any]],
    *,
    n: int,
    go: float,
    end: float,
    sent: int,
    entries: int,
    target_missing: int,
    server_cpu: tuple[float, float],
    rss: float,
    metrics: str,
    rate: float | None,
) -> dict[str, Any]:
    devices: dict[str, dict[str, Any]] = {}
    for r in results:
        devices.update(r["devices"])
    promised: dict[int, tuple[str, float]] = {}
    for dev, d in devices.items():
        for index, t in d["promised"].items():
            promised[int(index)] = (dev, t)
    latencies: list[float] = []
    complete_times: list[float] = []
    for index, (sender, t_promise) in promised.items():
        key = str(index)
        receipts = []
        for dev, d in devices.items():
            if dev == sender:
                continue
            notified = d["notified"].get(key)
            if notified is not None:
                latencies.append(notified - t_promise)
            receipted = d["receipted"].get(key)
            if receipted is not None:
                receipts.append(receipted)
        if len(receipts) == n - 1:
            complete_times.append(max(receipts))
    complete = len(complete_times)
    last = max(complete_times, default=end)
    elapsed = max(1e-9, last - go)
    client_cpu = sum(r["cpu"] for r in results)
    posts = sum(d["receipt_posts"] for d in devices.values())
    batches = _metric(metrics, "docket_batch_size_count")
    errors = [e for r in results for e in r["errors"]]
    return {
        "mode": "open loop" if rate else "closed loop",
        "offered_drafts_per_s": rate,
        "drafts_sent": sent,
        "drafts_complete": complete,
        "seconds": round(elapsed, 3),
        "drafts_per_s": round(complete / elapsed, 1),
        "entries": entries,
        "entries_missing": target_missing,
        "entries_per_s": round(entries / elapsed, 1),
        "latency_p50_ms": round(1000 * _pct(latencies, 0.50), 2),
        "latency_p99_ms": round(1000 * _pct(latencies, 0.99), 2),
        "latency_max_ms": round(1000 * max(latencies, default=float("nan")), 2),
        "server_cpu_s": round(server_cpu[1], 3),
        "server_main_cpu_s": round(server_cpu[0], 3),
        "server_cpu_us_per_entry": round(1e6 * server_cpu[1] / max(1, entries), 1),
        "server_main_cpu_us_per_entry": round(1e6 * server_cpu[0] / max(1, entries), 1),
        "client_cpu_s": round(client_cpu, 3),
        "client_cpu_us_per_entry": round(1e6 * client_cpu / max(1, entries), 1),
        "server_rss_mib": round(rss, 1),
        "receipts_per_post": round(sum(len(d["receipted"]) for d in devices.values()) / posts, 2)
        if posts
        else 0.0,
        "mean_commit_batch": round(_metric(metrics, "docket_batch_size_sum") / batches, 1)
        if batches
        else 0.0,
        "mean_commit_ms": round(1e3 * _metric(metrics, "docket_commit_seconds_sum") / batches, 2)
        if batches
        else 0.0,
        "errors": errors[:5],
    }


# --- baselines ------------------------------------------------------------------------


def verify_rate(seconds: float) -> float:
    """Raw Ed25519 verifies per CPU second (:func:`protocol.crypto.verify`)."""
    key = crypto.SigningKey.generate(os.urandom)
    message = os.urandom(600)
    sig = key.sign(crypto.CTX_RECEIPT, message)
    public = key.public_bytes()
    # CPU time, not wall time: on a shared machine a wall-clock rate drops with the
    # neighbours' load while the server's CPU seconds per entry do not, which would
    # flatter the ratio.
    rates = []
    for _ in range(3):
        n = 0
        t0 = time.process_time()
        while time.process_time() - t0 < seconds / 3:
            for _ in range(100):
                crypto.verify(public, crypto.CTX_RECEIPT, message, sig)
            n += 100
        rates.append(n / (time.process_time() - t0))
    return statistics.median(rates)


async def bare_post_rate(seconds: float, clients: int, concurrency: int = 16) -> dict[str, Any]:
    """2 KiB JSON POSTs/s against a trivial aiohttp app, with the same client processes."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.load",
        "bare-server",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    async with _terminating(server):
        url = await _listening(server)
        configs = [
            {"mode": "bare", "url": f"{url}/echo", "seconds": seconds, "concurrency": concurrency}
            for _ in range(clients)
        ]
        procs = await _spawn_workers(configs)
        try:
            for proc in procs:
                await _expect(proc, "ready")
            cpu0 = cpu_seconds(server.pid)
            go = time.monotonic() + 0.2
            await _tell(procs, f"go {go}")
            for proc in procs:
                await _expect(proc, "sent", timeout=seconds + 60)
            elapsed = time.monotonic() - go
            cpu = cpu_seconds(server.pid) - cpu0
            await _tell(procs, "finish")
            results = [json.loads(await _expect(proc, "result")) for proc in procs]
        finally:
            for proc in procs:
                await proc.wait()
    posts = sum(r["posts"] for r in results)
    return {
        "posts_per_s": round(posts / elapsed, 1),
        "server_cpu_us_per_post": round(1e6 * cpu / max(1, posts), 1),
        "client_cpu_us_per_post": round(1e6 * sum(r["cpu"] for r in results) / max(1, posts), 1),
    }


# --- the runner ------------------------------------------------------------------------


async def run_async(
    *,
    seconds: float,
    drafts: int,
    rate: float | None,
    clients: int,
    smoke: bool,
    inline: bool = True,
    compare: Path | None = None,
    store: Path | None = None,
) -> dict[str, Any]:
    """Baselines, the max-rate run and the latency run at half of it (or ``rate``);
    with ``compare``, the same two runs against the server of that checkout too; with
    ``store``, the same two runs on a copy of that large store too."""
    base_s = 0.3 if smoke else 3.0
    verify = verify_rate(base_s)
    bare = await bare_post_rate(base_s, clients)
    verify_us = 1e6 / verify
    out: dict[str, Any] = {
        "baselines": {
            "ed25519_verify_per_s": round(verify, 1),
            "ed25519_verify_us": round(verify_us, 2),
            "bare_aiohttp": bare,
        }
    }
    runs: dict[str, Any] = {}
    if rate is None:
        runs["max"] = await workload(
            seconds=seconds, drafts=drafts, rate=None, clients=clients, inline=inline
        )
        half = max(1.0, runs["max"]["drafts_per_s"] / 2)
    else:
        half = rate
    runs["latency"] = await workload(
        seconds=seconds, drafts=drafts, rate=half, clients=clients, inline=inline
    )
    if compare is not None:
        if rate is None:
            runs["max@compare"] = await workload(
                seconds=seconds, drafts=drafts, rate=None, clients=clients, repo=compare
            )
        runs["latency@compare"] = await workload(
            seconds=seconds, drafts=drafts, rate=half, clients=clients, repo=compare
        )
    if store is not None:
        if rate is None:
            runs["max@store"] = await workload(
                seconds=seconds, drafts=drafts, rate=None, clients=clients, store=store
            )
        runs["latency@store"] = await workload(
            seconds=seconds, drafts=drafts, rate=half, clients=clients, store=store
        )
        if compare is not None and rate is None:
            runs["max@compare+store"] = await workload(
                seconds=seconds, drafts=drafts, rate=None, clients=clients, repo=compare,
                store=store,
            )  # fmt: skip
    out["runs"] = runs
    top = runs.get("max", runs["latency"])
    for other in ("compare", "store"):
        if f"max@{other}" in runs:
            base = runs[f"max@{other}"]
            out[f"versus_{other}"] = {
                key: round(top[key] / base[key], 2) if base[key] else None
                for key in (
                    "drafts_per_s",
                    "entries_per_s",
                    "server_cpu_us_per_entry",
                    "client_cpu_us_per_entry",
                    "server_rss_mib",
                )
            }
    out["ratios"] = {
        "server_cpu_per_entry_in_verifies": round(top["server_cpu_us_per_entry"] / verify_us, 2),
        "server_main_cpu_per_entry_in_verifies": round(
            top["server_main_cpu_us_per_entry"] / verify_us, 2
        ),
        "entries_per_s_vs_bare_posts_per_s": round(
            top["entries_per_s"] / max(1.0, bare["posts_per_s"]), 3
        ),
        "drafts_per_s_vs_synapse_35": round(top["drafts_per_s"] / 35, 1),
    }
    out["goals"] = {
        "cpu_per_entry_le_2_verifies": out["ratios"]["server_cpu_per_entry_in_verifies"] <= 2,
        "drafts_per_s_ge_350": top["drafts_per_s"] >= 350,
        "p99_le_50ms_at_half_rate": runs["latency"]["latency_p99_ms"] <= 50,
    }
    return out


def run(
    *,
    seconds: float = 10.0,
    drafts: int = 20_000,
    rate: float | None = None,
    clients: int = 2,
    smoke: bool = False,
    inline: bool = True,
    compare: Path | None = None,
    store: Path | None = None,
) -> dict[str, Any]:
    """Synchronous entry point for ``python -m bench load``.  The smoke run also
    exercises ``store`` on a tiny store it builds."""
    if smoke:
        seconds, drafts = min(seconds, 2.0), min(drafts, 26)
        clients = min(clients, 1)
        if store is None:
            with tempfile.TemporaryDirectory(prefix="docket-bench-store-") as tmp:
                build_store(Path(tmp) / "store", 400)
                return run(
                    seconds=seconds,
                    drafts=drafts,
                    rate=rate,
                    clients=clients,
                    smoke=True,
                    inline=inline,
                    compare=compare,
                    store=Path(tmp) / "store",
                )
    return asyncio.run(
        run_async(
            seconds=seconds,
            drafts=drafts,
            rate=rate,
            clients=clients,
            smoke=smoke,
            inline=inline,
            compare=compare,
            store=store,
        )
    )


def format_table(result: dict[str, Any]) -> str:
    """The human-readable table."""
    b = result["baselines"]
    lines = [
        f"ed25519 verify: {b['ed25519_verify_per_s']:.0f}/s ({b['ed25519_verify_us']} us)",
        f"bare aiohttp 2 KiB POST: {b['bare_aiohttp']['posts_per_s']:.0f}/s "
        f"(server {b['bare_aiohttp']['server_cpu_us_per_post']} us/post)",
        "",
        f"{'':34s}" + "".join(f"{name:>14s}" for name in result["runs"]),
    ]
    keys = [k for k in next(iter(result["runs"].values())) if k not in ("errors", "mode")]
    for key in keys:
        row = "".join(f"{run_[key]!s:>14s}" for run_ in result["runs"].values())
        lines.append(f"{key:34s}{row}")
    lines.append("")
    for other in ("compare", "store"):
        for key, value in result.get(f"versus_{other}", {}).items():
            lines.append(f"{f'max / max@{other} ' + key:44s} {value}")
    for key, value in {**result["ratios"], **result["goals"]}.items():
        lines.append(f"{key:44s} {value}")
    for name, run_ in result["runs"].items():
        for error in run_["errors"]:
            lines.append(f"ERROR ({name}): {error}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        sys.exit(worker_main())
    if sys.argv[1:2] == ["bare-server"]:
        sys.exit(bare_main())
    sys.exit("usage: python -m bench load ... (this module's own modes are internal)")
