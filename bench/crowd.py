"""``python -m bench crowd [--clients N] [--seconds S] [--interval I]``: many WebSockets.

N participants (default 200, each its own member and device) hold a WebSocket
(``inline=1&batch=1``) to a real ``docket-server serve`` process and each sends a
draft to a shared channel every ``I`` seconds (staggered), for ``S`` seconds.  Every
draft is addressed to every participant, so each commit fans out to N sockets.

Printed, as medians and p99: the upload latency (POST to promise), the notice latency
(start of the POST to the notice arriving at each recipient's socket), the latency of
``/healthz`` polled by a separate probe, the worst event-loop lag of this (client)
process, and how many notices were missed or repeated (must be 0).  Setup (founding,
enrolling N members, one channel) runs in-process first and is not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import _pct
from server.datadir import init_data_dir
from tests.faults.procs import serving
from tests.server.harness import ORIGIN, Harness, Person

CHANNEL = "crowd"


async def _setup(data: Path, clients: int) -> tuple[Harness, list[Person]]:
    """Found talks with ``clients`` members in two delegations and one channel for all."""
    init = init_data_dir(data, ORIGIN)
    async with Harness.start(data.parent, secrets.token_bytes, init=init) as h:
        await h.found()
        heads = [
            await h.add_delegation("north", "n-head"),
            await h.add_delegation("south", "s-head"),
        ]
        people: list[Person] = []
        for i in range(clients):
            people.append(await h.add_member(heads[i % 2], f"p{i:04d}"))
        await h.add_channel(CHANNEL, "plenary", ["north", "south"], ["med"])
        return h, people


async def _run(clients: int, seconds: float, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="docket-crowd-") as tmp:
        data = Path(tmp) / "data"
        setup, people = await _setup(data, clients)
        env = {
            "DOCKET_MAX_CONNS_PER_IP": str(4 * clients + 64),
            "DOCKET_WS_MAX_CLIENTS": str(4 * clients),
        }
        async with serving(data, env=env) as served:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                h = Harness(
                    session=session,
                    base=served.url,
                    settings=setup.settings,
                    init=setup.init,
                    rng=secrets.token_bytes,
                    people=setup.people,
                    ledger=setup.ledger,
                    genesis=setup.genesis,
                )
                result = await _crowd(h, people, seconds, interval)
            await served.stop()
        return result


async def _crowd(
    h: Harness, people: list[Person], seconds: float, interval: float
) -> dict[str, Any]:
    start_after = h.require_ledger().size - 1
    for person in people:
        await h.token(person)
    arrivals: dict[str, list[tuple[int, float]]] = {p.member: [] for p in people}
    started_at: dict[int, float] = {}
    uploads: list[float] = []
    health: list[float] = []
    stop = asyncio.Event()
    ready = 0

    async def listen(person: Person) -> None:
        nonlocal ready
        token = await h.token(person)
        async with h.session.ws_connect(
            f"{h.base}/v1/ws?after={start_after}&inline=1&batch=1",
            headers={"Authorization": f"Bearer {token}"},
            heartbeat=None,
        ) as ws:
            ready += 1
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.perf_counter()
                for notice in json.loads(msg.data):
                    arrivals[person.member].append((int(notice["index"]), now))

    async def send(person: Person, offset: float) -> None:
        await asyncio.sleep(offset)
        while not stop.is_set():
            sealed = h.seal(person, CHANNEL, f"from {person.member} " + "x" * 200)
            t0 = time.perf_counter()
            resp = await h.post_draft(person, sealed)
            raw = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"upload {resp.status} {raw[:200]!r}")
            uploads.append(time.perf_counter() - t0)
            started_at[int(json.loads(raw)["promise"]["index"])] = t0
            try:
                async with asyncio.timeout(interval):
                    await stop.wait()
            except TimeoutError:
                pass

    async def probe() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            async with h.session.get(h.base + "/healthz") as resp:
                await resp.read()
            health.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)

    lag = 0.0

    async def lag_probe() -> None:
        nonlocal lag
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            await asyncio.sleep(0.01)
            lag = max(lag, loop.time() - t0 - 0.01)

    listeners = [asyncio.create_task(listen(p)) for p in people]
    async with asyncio.timeout(120):
        while ready < len(people):
            await asyncio.sleep(0.05)
    tasks = [asyncio.create_task(send(p, interval * i / len(people))) for i, p in enumerate(people)]
    tasks += [asyncio.create_task(probe()), asyncio.create_task(lag_probe())]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(2.0)  # the last notices
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    latencies: list[float] = []
    missed = repeated = 0
    for person in people:
        got = Counter(index for index, _ in arrivals[person.member])
        repeated += sum(n - 1 for n in got.values() if n > 1)
        missed += sum(1 for index in started_at if index not in got)
        latencies += [t - started_at[i] for i, t in arrivals[person.member] if i in started_at]
    return {
        "clients": len(people),
        "seconds": seconds,
        "drafts": len(uploads),
        "notices": len(latencies),
        "upload_ms": (statistics.median(uploads) * 1e3, _pct(uploads, 0.99) * 1e3),
        "notice_ms": (statistics.median(latencies) * 1e3, _pct(latencies, 0.99) * 1e3),
        "healthz_ms": (statistics.median(health) * 1e3, _pct(health, 0.99) * 1e3),
        "client_lag_ms": lag * 1e3,
        "missed": missed,
        "repeated": repeated,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench crowd", description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between a client's drafts"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args.clients, args.seconds, args.interval))
    print(f"# crowd, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs")
    for name, value in result.items():
        if isinstance(value, tuple):
            print(f"{name:14s} median {value[0]:9.2f}   p99 {value[1]:9.2f}")
        else:
            print(f"{name:14s} {value}")
    return 0
