"""Many concurrent clients: the server keeps answering ``/healthz`` within a bound.

200 connections read everything a member reads (entries, inbox, checkpoints, proofs,
drafts and receipts) while a burst of drafts and receipts is written, against a real
``docket-server serve`` process.  A separate connection polls ``/healthz`` throughout:
every answer must be 200 and come within :data:`HEALTH_BOUND` seconds, no request may
fail with a 5xx, and every acknowledged write must be in the log afterwards.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.faults.counters import bump
from tests.faults.procs import serving
from tests.faults.workload import Template, build_template, burst, login_all, verify_log

CONNECTIONS = 200
REQUESTS_EACH = 10
HEALTH_BOUND = 2.0
"""Seconds: the slowest ``/healthz`` answer allowed while the server is loaded."""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("load-template"))


async def _reader(
    session: aiohttp.ClientSession,
    base: str,
    tokens: list[str],
    size: int,
    drafts: list[int],
    statuses: Counter[int],
    seed: int,
) -> None:
    rnd = random.Random(seed)
    for _ in range(REQUESTS_EACH):
        i = rnd.randrange(1, size)
        path = rnd.choice(
            [
                f"/v1/log/entries?start={rnd.randrange(size)}&end={size}",
                "/v1/inbox?after=0&limit=50",
                "/v1/log/checkpoint",
                f"/v1/log/proof/inclusion?index={i - 1}&size={i}",
                f"/v1/log/proof/consistency?old={i}&new={size}",
                f"/v1/drafts/{rnd.choice(drafts)}",
                f"/v1/drafts/{rnd.choice(drafts)}/receipts",
                "/v1/talks",
            ]
        )
        headers = {"Authorization": f"Bearer {rnd.choice(tokens)}"}
        async with session.get(base + path, headers=headers) as resp:
            await resp.read()
            statuses[resp.status] += 1


async def _health(
    base: str, latencies: list[float], statuses: list[int], stop: asyncio.Event
) -> None:
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.monotonic()
            async with session.get(base + "/healthz") as resp:
                await resp.read()
                statuses.append(resp.status)
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.05)


async def test_health_within_bound_under_200_connections(
    template: Template, tmp_path: Path
) -> None:
    data = template.clone(tmp_path / "data")
    async with serving(data) as served, template.attach(served.url, data, "load") as h:
        await login_all(h)
        # Recipients of the seeded drafts: every plenary device may read them.
        readers = ["n-adv", "s-adv", "n-head", "s-head", "med"]
        tokens = [await h.token(h.people[r]) for r in readers]
        size = len(template.entries)
        drafts = [index for _, index in template.seeded]
        statuses: Counter[int] = Counter()
        latencies: list[float] = []
        health: list[int] = []
        stop = asyncio.Event()
        monitor = asyncio.create_task(_health(h.base, latencies, health, stop))
        started = time.monotonic()
        connector = aiohttp.TCPConnector(limit=0)
        opened = Counter[str]()

        async def on_open(*_: object) -> None:
            opened["connections"] += 1

        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(on_open)
        async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:
            writes = asyncio.create_task(burst(h, template.seeded))
            await asyncio.gather(
                *(
                    _reader(session, h.base, tokens, size, drafts, statuses, seed)
                    for seed in range(CONNECTIONS)
                ),
            )
            outcome = await writes
        elapsed = time.monotonic() - started
        stop.set()
        await monitor
        bump("500s seen", statuses[500] + outcome.statuses[500])
        assert set(statuses) == {200}, statuses
        assert set(outcome.statuses) == {200}, outcome.statuses
        assert sum(statuses.values()) == CONNECTIONS * REQUESTS_EACH
        assert health and set(health) == {200}
        assert max(latencies) < HEALTH_BOUND, (max(latencies), statistics.median(latencies))
        assert elapsed < 60
        assert opened["connections"] >= CONNECTIONS  # really that many at once
        # Everything acknowledged under load is in the log.
        await verify_log(h, outcome.promises, before=None)
