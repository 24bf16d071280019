"""Tiles mode: C2SP tlog-tiles serving against a bare static GET, in the same run.

Usage::

    python -m bench tiles --entries 65536 --seconds 10

The store is the one :mod:`bench.proofs` builds (real signed entries written through the
server's storage functions; reused when it exists).  ``docket-server serve`` runs on it;
beside it, a one-route aiohttp app serves one static file of 8,192 bytes (the size of a
full hash tile) with ``web.static``, the cheapest GET aiohttp can answer from disk.  The
same ``--clients`` keep-alive clients then alternate ``--slices`` slices of tile GETs
(random full level-0 tiles, each 256 leaf hashes; one in eight a level-1 tile or an
entry bundle) and slices of the static GET, so both see the same host load.  Per-slice
rates, their medians and the median per-slice-pair ratio tiles / static are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.proofs import TOKEN, _free_port, _wait_up, build_store
from protocol.encoding import b64e
from protocol.tiles import ENTRIES, TILE_WIDTH, tile_path, tile_width
from server.settings import DB_FILE
from server.storage.db import connect
from server.storage.log import log_size_txn

STATIC_APP = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_static("/static", sys.argv[2])
async def ok(request):
    return web.Response(text="ok")
app.router.add_get("/healthz", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def _tile(size: int, rng: random.Random) -> str:
    full = size // TILE_WIDTH
    pick = rng.random()
    if pick < 1 / 16 and tile_width(1, 0, size):
        return "/" + tile_path(1, 0, tile_width(1, 0, size))
    if pick < 1 / 8:
        return "/" + tile_path(ENTRIES, rng.randrange(full))
    return "/" + tile_path(0, rng.randrange(full))


async def _slice(
    session: object,
    url: str,
    size: int,
    clients: int,
    seconds: float,
    static: bool,
    rng: random.Random,
) -> tuple[int, int, float]:
    headers = {"Authorization": "Bearer " + b64e(TOKEN)}
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            path = "/static/tile.bin" if static else _tile(size, rng)
            async with session.get(url + path, headers=headers) as r:  # type: ignore[attr-defined]
                await r.read()
                if r.status == 200:
                    done += 1
                else:
                    errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return done, errors, time.perf_counter() - start


async def _interleaved(
    tile_url: str, static_url: str, size: int, clients: int, seconds: float, slices: int
) -> tuple[list[float], list[float], int]:
    import aiohttp

    rng = random.Random(1)
    tiles: list[float] = []
    statics: list[float] = []
    errors = 0
    each = seconds / slices
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as ts,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as ss,
    ):
        await _slice(ts, tile_url, size, clients, 0.3, False, rng)
        await _slice(ss, static_url, size, clients, 0.3, True, rng)
        for _ in range(slices):
            for session, url, static, out in (
                (ts, tile_url, False, tiles),
                (ss, static_url, True, statics),
            ):
                done, errs, wall = await _slice(session, url, size, clients, each, static, rng)
                out.append(done / wall)
                errors += errs
    return tiles, statics, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench tiles", description=__doc__)
    parser.add_argument("--entries", type=int, default=65_536)
    parser.add_argument("--data", type=Path, help="store to build or reuse")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="total per phase")
    parser.add_argument("--slices", type=int, default=5)
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
        print(f"store: built {size} entries in {built:.1f} s")
    else:
        print(f"store: reusing {data} ({size} entries)")
    if size < TILE_WIDTH:
        raise SystemExit("the store needs at least 256 entries (one full tile)")
    port, static_port = _free_port(), _free_port()
    url, static_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{static_port}"
    config = data.parent / f"{data.name}.toml"
    config.write_text("rate = 1e9\nrate_burst = 1000000000\nip_rate = 1e9\n")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "server.cli", "serve", "--data", str(data), "--port", str(port),
           "--log-level", "warning", "--config", str(config)]  # fmt: skip
    with tempfile.TemporaryDirectory() as static_dir:
        Path(static_dir, "tile.bin").write_bytes(os.urandom(32 * TILE_WIDTH))
        proc = subprocess.Popen(cmd, env=env)
        static = subprocess.Popen([sys.executable, "-c", STATIC_APP, str(static_port), static_dir])
        try:
            asyncio.run(_wait_up(url, proc))
            asyncio.run(_wait_up(static_url, static))
            tiles, statics, errors = asyncio.run(
                _interleaved(url, static_url, size, args.clients, args.seconds, args.slices)
            )
        finally:
            for p in (proc, static):
                p.terminate()
                p.wait()
    ratios = [t / s for t, s in zip(tiles, statics, strict=True)]
    each = args.seconds / args.slices
    print(f"interleaved, {args.slices} x ({each:.1f} s tiles + {each:.1f} s static GET), "
          f"{args.clients} clients, log of {size} entries:")  # fmt: skip
    print("  tile GETs/s per slice:   " + ", ".join(f"{r:,.0f}" for r in tiles))
    print("  static GETs/s per slice: " + ", ".join(f"{r:,.0f}" for r in statics))
    print(
        f"tiles: median {statistics.median(tiles):,.0f} /s; bare static GET (8 KiB file, "
        f"web.static): median {statistics.median(statics):,.0f} /s; tiles / static: median "
        f"{statistics.median(ratios):.2f} (per slice pair {min(ratios):.2f}-{max(ratios):.2f})"
        + (f"; {errors} errors" if errors else "")
    )
    return 0 if not errors else 1
