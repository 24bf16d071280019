"""``python -m bench timing [--pairs N]``: does a draft's existence leak through timing?

A roster device that is not a recipient asks for a draft that exists (forbidden) and
for one that does not (missing), interleaved, over HTTP against a real app on a real
SQLite file (the test harness's in-process server on loopback).  Printed: the median
and p90 of each, and their ratio, for ``GET /v1/drafts/{i}``, ``.../ciphertext`` and
``.../receipts``.  The same run also times the storage lookups alone, where the
difference is not drowned by HTTP: the receipts check now
(``may_see_receipts_txn``) against the one it replaced (``draft_audience_txn``, which
found the draft first and then refused it) as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from server.storage.relay import draft_audience_txn, draft_for_device_txn, may_see_receipts_txn
from tests.server.harness import Harness


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9)]


async def _http(pairs: int) -> list[tuple[str, float, float, float, float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="docket-timing-") as tmp:
        async with Harness.start(Path(tmp), secrets.token_bytes) as h:
            await h.standard_talks()
            sender = h.people["n-adv"]
            sealed = h.seal(sender, "north-med", "x" * 2000)
            index = (await h.send(sender, sealed)).index
            head = h.people["n-head"]
            await h.post_receipts(head, [h.receipt(head, sealed, index)])
            token = await h.token(h.people["s-adv"])
            headers = {"Authorization": f"Bearer {token}"}
            for suffix in ("", "/ciphertext", "/receipts"):
                paths = (f"/v1/drafts/{index}{suffix}", f"/v1/drafts/{index + 10_000}{suffix}")
                samples: tuple[list[float], list[float]] = ([], [])
                for i in range(pairs + 50):
                    for which in (0, 1) if i % 2 == 0 else (1, 0):
                        started = time.perf_counter()
                        resp = await h.session.get(h.base + paths[which], headers=headers)
                        await resp.read()
                        if i >= 50:  # warm-up
                            samples[which].append(time.perf_counter() - started)
                f_med, f_p90 = _stats(samples[0])
                m_med, m_p90 = _stats(samples[1])
                rows.append((f"GET /v1/drafts/{{i}}{suffix}", f_med, f_p90, m_med, m_p90))
            outsider = h.people["s-adv"]
            rows += _storage(
                h.settings.db_path, index, outsider.device, outsider.member, pairs * 10
            )
    return rows


def _storage(
    db: Path, index: int, device: bytes, member: str, n: int
) -> list[tuple[str, float, float, float, float]]:
    conn = sqlite3.connect(db)
    rows = []
    try:
        lookups: dict[str, Callable[[int], object]] = {
            "draft_for_device_txn (drafts)": lambda i: draft_for_device_txn(conn, i, device),
            "may_see_receipts_txn (receipts)": lambda i: may_see_receipts_txn(
                conn, i, device, member, False
            ),
            "draft_audience_txn (receipts before)": lambda i: draft_audience_txn(conn, i, device),
        }
        for name, lookup in lookups.items():
            samples: tuple[list[float], list[float]] = ([], [])
            for k in range(n):
                for which, i in (
                    ((0, index), (1, index + 10_000))
                    if k % 2 == 0
                    else (
                        (1, index + 10_000),
                        (0, index),
                    )
                ):
                    started = time.perf_counter()
                    lookup(i)
                    samples[which].append(time.perf_counter() - started)
            f_med, f_p90 = _stats(samples[0])
            m_med, m_p90 = _stats(samples[1])
            rows.append((name, f_med, f_p90, m_med, m_p90))
    finally:
        conn.close()
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench timing", description=__doc__)
    parser.add_argument("--pairs", type=int, default=2000, help="interleaved pairs per route")
    args = parser.parse_args(argv)
    print(f"# existence timing, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs")
    head = f"{'forbidden med':>14s} {'p90':>8s} {'missing med':>12s} {'p90':>8s} {'ratio':>6s}"
    print(f"{'what':38s} {head}")
    for name, f_med, f_p90, m_med, m_p90 in asyncio.run(_http(args.pairs)):
        print(
            f"{name:38s} {f_med * 1e6:11.1f} µs {f_p90 * 1e6:8.1f} {m_med * 1e6:9.1f} µs"
            f" {m_p90 * 1e6:8.1f} {f_med / m_med:6.3f}"
        )
    return 0
