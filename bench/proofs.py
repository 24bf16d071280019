"""Large-log mode: a real server store of N entries, its start-up, RSS and proof serving.

Usage::

    python -m bench proofs --entries 1000000            # build (or reuse) and measure
    python -m bench proofs --entries 10000 --seconds 2  # small

1. **Store.**  The signed log of :func:`bench.audit_bench.build_log` (real Ed25519
   signatures, made in parallel processes) is written into a fresh data directory
   through the server's own storage functions (:func:`server.storage.log.append_batch_txn`
   with the Merkle nodes of :class:`protocol.merkle.Frontier`, the draft and receipt side
   rows, the final checkpoint signed by the log key, ``checkpoint.txt``).  Promises are
   placeholders: nothing measured here reads them.  The store is kept in ``--data`` and
   reused when it already holds N entries.
2. **Start-up and RSS.**  ``docket-server serve`` is started on it; the time until
   ``/healthz`` answers and the server's RSS (``VmRSS``, and ``VmHWM``, the peak) are
   reported after start-up and again after the proof run.
3. **Proofs.**  ``--clients`` concurrent aiohttp clients on loopback ask for random
   inclusion proofs (``index < size = N``) and consistency proofs (``old < new = N``);
   a bare aiohttp GET baseline (a one-route app answering a fixed small JSON, same
   client) runs at the same time as a second server.  The two phases are *interleaved*:
   ``--slices`` alternating slices of ``--seconds / --slices`` each (proofs, bare,
   proofs, bare ...), so on a shared host both see the same load; per-slice rates,
   their medians and the median per-slice-pair ratio proofs / bare are reported.  Then
   the in-process rate (the storage function on one connection) and the node reads per
   proof (a counting :class:`~protocol.merkle.NodeReader`).
4. **Appends.**  With the server stopped: the time of one group commit's writes at this
   size — :func:`~server.storage.log.append_batch_txn` of 32 placeholder entries in a
   ``BEGIN IMMEDIATE`` transaction that is rolled back (the store is left as it was) —
   and, beside it, :func:`~server.storage.log.log_size_txn` (the gap check, ``count(*)``
   over the whole table), which every commit used to run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from protocol import crypto, merkle
from protocol.checkpoint import open_checkpoint
from protocol.encoding import b64e
from protocol.envelope import DraftHeader
from protocol.ledger import parse_entry
from protocol.receipt import Receipt
from server.datadir import init_data_dir
from server.settings import DB_FILE, KEY_FILE
from server.storage.auth import insert_token_txn
from server.storage.db import connect, run_txn
from server.storage.log import (
    AppendRecord,
    CheckpointRow,
    DraftRow,
    ReceiptRow,
    SqliteNodes,
    append_batch_txn,
    insert_checkpoint_txn,
    log_size_txn,
)

if TYPE_CHECKING:
    import aiohttp

BATCH = 8192
TOKEN = bytes(range(32))


def build_store(data: Path, entries: int) -> tuple[int, float]:
    """Write a signed log of about ``entries`` into a new data directory ``data``."""
    from bench.audit_bench import ORIGIN, _keys, _seed, build_log

    start = time.perf_counter()
    log = build_log(entries)
    init_data_dir(data, ORIGIN)
    (data / KEY_FILE).write_text(b64e(_seed("log")) + "\n")
    conn = connect(data / DB_FILE)
    frontier = merkle.Frontier()
    sender_member: dict[bytes, str] = {}
    batch: list[AppendRecord] = []
    draft_index: dict[bytes, int] = {}

    def flush() -> None:
        run_txn(conn, append_batch_txn, batch)
        batch.clear()

    for index, raw in enumerate(log.entries):
        leaf = merkle.leaf_hash(raw)
        nodes = tuple(frontier.append(leaf))
        entry = parse_entry(raw)
        kind = "genesis" if index == 0 else type(entry).__name__
        draft = receipt = None
        if isinstance(entry, DraftHeader):
            kind = "draft"
            draft_index[leaf] = index
            draft = DraftRow(
                sender=bytes(entry.sender),
                sender_member=sender_member.get(bytes(entry.sender), "?"),
                msg=entry.msg,
                channel=entry.channel,
                ct_hash=entry.ct_hash,
                ct_len=entry.ct_len,
                keys=b"{}",
            )
        elif isinstance(entry, Receipt):
            kind = "receipt"
            receipt = ReceiptRow(draft_idx=entry.index, device=bytes(entry.device), kind=entry.kind)
        elif index > 0:
            kind = entry.record_type  # type: ignore[union-attr]
            for dev in entry.args.devices:  # type: ignore[union-attr]
                sender_member[bytes(dev.device_id)] = entry.args.member or "?"  # type: ignore[union-attr]
        else:
            sender_member[bytes(entry.mediator_device.device_id)] = "mediator"  # type: ignore[union-attr]
        batch.append(
            AppendRecord(
                index=index,
                kind=kind,
                leaf=leaf,
                body=raw,
                promise=b"{}",
                nodes=nodes,
                draft=draft,
                receipt=receipt,
                genesis=index == 0,
            )
        )
        if len(batch) >= BATCH:
            flush()
    flush()
    note = log.checkpoints[-1]
    cp, _ = open_checkpoint(
        note, origin=ORIGIN, log_name=ORIGIN, log_key=crypto.SigningKey(_seed("log")).public_bytes()
    )
    mediator = _keys("mediator").device_id

    def finish(c: sqlite3.Connection) -> None:
        insert_checkpoint_txn(c, CheckpointRow(size=cp.size, root=cp.root, note=note, time=0))
        insert_token_txn(c, crypto.sha256(TOKEN), bytes(mediator), 2**62, 0)

    run_txn(conn, finish)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    (data / "checkpoint.txt").write_bytes(note)
    return len(log.entries), time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    import aiohttp

    deadline = time.perf_counter() + timeout
    async with aiohttp.ClientSession() as s:
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("server exited")
            try:
                async with s.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)
    raise RuntimeError("server did not come up")


def _paths(size: int, rng: random.Random, bare: bool) -> str:
    if bare:
        return "/bare"
    if rng.random() < 0.5:
        return f"/v1/log/proof/inclusion?index={rng.randrange(size)}&size={size}"
    return f"/v1/log/proof/consistency?old={rng.randrange(1, size)}&new={size}"


async def _slice(
    session: aiohttp.ClientSession,
    url: str,
    size: int,
    clients: int,
    seconds: float,
    bare: bool,
    rng: random.Random,
) -> tuple[int, int, float]:
    """``clients`` concurrent GET loops on ``session`` for ``seconds``: (ok, errors, wall)."""
    headers = {"Authorization": "Bearer " + b64e(TOKEN)}
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            async with session.get(url + _paths(size, rng, bare), headers=headers) as r:
                await r.read()
                if r.status == 200:
                    done += 1
                else:
                    errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return done, errors, time.perf_counter() - start


async def _interleaved(
    proof_url: str, bare_url: str, size: int, clients: int, seconds: float, slices: int
) -> tuple[list[float], list[float], int]:
    """Alternate ``slices`` proof slices and bare-GET slices of ``seconds / slices`` each
    (proof, bare, proof, bare ...), each phase on its own warm keep-alive session, so both
    see the same host load.  Returns the per-slice rates of each and the error count."""
    import aiohttp

    rng = random.Random(1)
    proofs: list[float] = []
    bares: list[float] = []
    errors = 0
    each = seconds / slices
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as ps,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as bs,
    ):
        # Warm both: open the keep-alive connections outside the measured slices.
        await _slice(ps, proof_url, size, clients, 0.2, False, rng)
        await _slice(bs, bare_url, size, clients, 0.2, True, rng)
        for _ in range(slices):
            for session, url, bare, out in (
                (ps, proof_url, False, proofs),
                (bs, bare_url, True, bares),
            ):
                done, errs, wall = await _slice(session, url, size, clients, each, bare, rng)
                out.append(done / wall)
                errors += errs
    return proofs, bares, errors


class CountingNodes:
    """A :class:`~protocol.merkle.NodeReader` that counts the nodes and calls it serves."""

    def __init__(self, inner: SqliteNodes) -> None:
        self.inner = inner
        self.nodes = 0
        self.calls = 0

    def get_nodes(self, coords: Sequence[merkle.Coord]) -> Sequence[bytes]:
        self.nodes += len(coords)
        self.calls += 1
        return self.inner.get_nodes(coords)


def in_process(db: Path, size: int, seconds: float) -> tuple[float, float, float, int]:
    """Proofs/s through the storage function on one connection; mean nodes and queries
    per proof; the longest proof seen."""
    conn = connect(db, readonly=True)
    reader = CountingNodes(SqliteNodes(conn))
    rng = random.Random(2)
    done = longest = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            if done % 2:
                proof = merkle.inclusion_proof(rng.randrange(size), size, reader)
            else:
                proof = merkle.consistency_proof(rng.randrange(1, size), size, reader)
            longest = max(longest, len(proof))
            done += 1
    rate = done / (time.perf_counter() - start)
    conn.close()
    return rate, reader.nodes / done, reader.calls / done, longest


BARE_APP = """
import sys
from aiohttp import web
async def bare(request):
    return web.json_response({"ok": True})
app = web.Application()
app.router.add_get("/bare", bare)
app.router.add_get("/healthz", bare)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench proofs", description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--data", type=Path, help="store to build or reuse")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="total per phase (proofs, bare GET)"
    )
    parser.add_argument(
        "--slices", type=int, default=5, help="alternating proof / bare-GET slices per phase"
    )
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args(argv)
    data: Path = args.data or Path(f"/tmp/docket-bench-{args.entries}")
    db = data / DB_FILE
    size = 0
    if db.exists():
        c = connect(db, readonly=True)
        size = log_size_txn(c)
        c.close()
    if size < args.entries:
        if data.exists():
            raise SystemExit(f"{data} exists with {size} entries: remove it first")
        size, built = build_store(data, args.entries)
        print(f"store: built {size} entries in {built:.1f} s ({db.stat().st_size / 2**20:.0f} MiB)")
    else:
        print(f"store: reusing {data} ({size} entries, {db.stat().st_size / 2**20:.0f} MiB)")
    if args.build_only:
        return 0

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # One bench client is one device: lift the per-device and per-address rate limits.
    config = data.parent / f"{data.name}.toml"
    config.write_text("rate = 1e9\nrate_burst = 1000000000\nip_rate = 1e9\n")
    cmd = [sys.executable, "-m", "server.cli", "serve", "--data", str(data), "--port", str(port),
           "--log-level", "warning", "--config", str(config)]  # fmt: skip
    bare_port = _free_port()
    bare_url = f"http://127.0.0.1:{bare_port}"
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port)])
    try:
        asyncio.run(_wait_up(url, proc))
        startup = time.perf_counter() - started
        rss, hwm = _rss(proc.pid)
        print(f"server start-up: {startup:.2f} s to /healthz; RSS {rss:.0f} MiB (peak {hwm:.0f})")
        asyncio.run(_wait_up(bare_url, bare))
        proofs, bares, errors = asyncio.run(
            _interleaved(url, bare_url, size, args.clients, args.seconds, args.slices)
        )
        rss2, hwm2 = _rss(proc.pid)
        if errors:
            print(f"  ({errors} errors)")
        each = args.seconds / args.slices
        ratios = [p / b for p, b in zip(proofs, bares, strict=True)]
        print(
            f"interleaved, {args.slices} x ({each:.1f} s proofs + {each:.1f} s bare GET), "
            f"{args.clients} clients:"
        )
        print("  HTTP proofs/s per slice:    " + ", ".join(f"{r:,.0f}" for r in proofs))
        print("  bare aiohttp GET/s per slice: " + ", ".join(f"{r:,.0f}" for r in bares))
        print(
            f"HTTP proofs: median {statistics.median(proofs):,.0f} /s; bare aiohttp GET "
            f"baseline: median {statistics.median(bares):,.0f} /s (same client); "
            f"proofs / bare: median {statistics.median(ratios):.2f} "
            f"(per slice pair {min(ratios):.2f}-{max(ratios):.2f})"
        )
        print(f"server RSS after {rss2:.0f} MiB (peak {hwm2:.0f})")
    finally:
        for p in (proc, bare):
            p.terminate()
            p.wait()
    rate, nodes, calls, longest = in_process(db, size, min(args.seconds, 3.0))
    print(
        f"in-process proofs: {rate:,.0f} /s; {nodes:.1f} nodes and {calls:.1f} queries per "
        f"proof (log2 n = {size.bit_length()}; longest proof {longest} hashes)"
    )
    append_ms, count_ms = append_cost(db, size)
    print(
        f"appends at {size} entries: a 32-entry batch's writes {append_ms:.2f} ms (median "
        f"of 20, rolled back); the full-table count(*) every commit once ran: {count_ms:.2f} ms"
    )
    return 0


def append_cost(db: Path, size: int, rounds: int = 20) -> tuple[float, float]:
    """Median ms of a 32-entry ``append_batch_txn`` (rolled back) and of ``log_size_txn``."""
    conn = connect(db)
    appends, counts = [], []
    try:
        for _ in range(rounds):
            records = [
                AppendRecord(
                    index=size + i,
                    kind="receipt",
                    leaf=bytes(32),
                    body=b"{}",
                    promise=b"{}",
                    nodes=((0, size + i, bytes(32)),),
                )
                for i in range(32)
            ]
            conn.execute("BEGIN IMMEDIATE")
            try:
                t0 = time.perf_counter()
                append_batch_txn(conn, records)
                appends.append(time.perf_counter() - t0)
            finally:
                conn.execute("ROLLBACK")
            t0 = time.perf_counter()
            log_size_txn(conn)
            counts.append(time.perf_counter() - t0)
    finally:
        conn.close()
    return statistics.median(appends) * 1e3, statistics.median(counts) * 1e3


if __name__ == "__main__":
    sys.exit(main())
