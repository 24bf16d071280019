"""Quick server throughput check: accepted drafts/s and receipts/s on loopback.

Runs ``docket-server serve`` as a subprocess on a fresh data directory, builds talks
with many member devices through the test harness, pre-seals every draft and pre-signs
every receipt (so the load generator spends its time on HTTP, not crypto), then fires
them with one concurrent chain per device and reads the group-commit batch sizes from
``/metrics``.

    python bench/run_server_quick.py [--senders 24] [--drafts 40] [--receipt-batch 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from protocol.encoding import canonical  # noqa: E402
from protocol.envelope import encode_upload  # noqa: E402
from server.datadir import init_data_dir  # noqa: E402
from tests.helpers import make_rng  # noqa: E402
from tests.server.harness import ORIGIN, Harness  # noqa: E402


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


async def run(senders: int, drafts: int, receipt_batch: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        init = init_data_dir(data, ORIGIN)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "DOCKET_LOG_LEVEL": "warning",
            "DOCKET_RATE": "1000000",
            "DOCKET_RATE_BURST": "1000000",
            "DOCKET_IP_RATE": "1000000",
            "DOCKET_IP_BURST": "1000000",
        }
        # BENCH_PROFILE=FILE runs the server under cProfile (stats written at shutdown).
        profile = os.environ.get("BENCH_PROFILE")
        prefix = ["-m", "cProfile", "-o", profile] if profile else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *prefix,
            "-m",
            "server.cli",
            "serve",
            "--data",
            str(data),
            "--port",
            "0",
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            url = line.split()[-1]
            async with Harness.attach(url, data, init, make_rng("bench")) as h:
                await h.standard_talks()
                head = h.people["n-head"]
                members = [await h.add_member(head, f"b{i}") for i in range(senders)]
                await h.add_channel("bench", "working_group", ["north"], [])
                for m in members:
                    await h.token(m)
                # Pre-seal: counters are consecutive per sender, the roster does not move.
                t0 = time.perf_counter()
                sealed = {
                    m.member: [h.seal(m, "bench", f"{m.member}/{i}") for i in range(drafts)]
                    for m in members
                }
                seal_s = time.perf_counter() - t0

                async def send_chain(member_id: str) -> list[int]:
                    person = h.people[member_id]
                    out = []
                    for s in sealed[member_id]:
                        resp = await h.request(
                            "POST", "/v1/drafts", person=person, data=encode_upload(s)
                        )
                        body = await resp.json()
                        if resp.status != 200:
                            raise RuntimeError(body)
                        out.append(int(body["promise"]["index"]))
                    return out

                t0 = time.perf_counter()
                indices = await asyncio.gather(*(send_chain(m.member) for m in members))
                draft_s = time.perf_counter() - t0
                total_drafts = senders * drafts
                await h.sync()

                # Receipts: every member device acknowledges receipt of every draft.
                by_index = {
                    i: s
                    for m in members
                    for i, s in zip(indices[members.index(m)], sealed[m.member], strict=True)
                }
                batches: dict[str, list[bytes]] = {}
                for m in members:
                    receipts = [h.receipt(m, s, i) for i, s in sorted(by_index.items())]
                    batches[m.member] = [
                        canonical(
                            {"receipts": [r.to_json() for r in receipts[k : k + receipt_batch]]}
                        )
                        for k in range(0, len(receipts), receipt_batch)
                    ]

                async def receipt_chain(member_id: str) -> int:
                    person = h.people[member_id]
                    n = 0
                    for body in batches[member_id]:
                        resp = await h.request("POST", "/v1/receipts", person=person, data=body)
                        got = await resp.json()
                        if resp.status != 200:
                            raise RuntimeError(got)
                        n += len(got["promises"])
                    return n

                t0 = time.perf_counter()
                counts = await asyncio.gather(*(receipt_chain(m.member) for m in members))
                receipt_s = time.perf_counter() - t0
                metrics = await (await h.request("GET", "/metrics")).text()
        finally:
            proc.terminate()
            await proc.wait()
    batches_n = _metric(metrics, "docket_batch_size_count")
    return {
        "senders": senders,
        "drafts": total_drafts,
        "draft_seconds": round(draft_s, 3),
        "drafts_per_second": round(total_drafts / draft_s, 1),
        "receipts": sum(counts),
        "receipt_batch": receipt_batch,
        "receipt_seconds": round(receipt_s, 3),
        "receipts_per_second": round(sum(counts) / receipt_s, 1),
        "commits": int(batches_n),
        "mean_batch": round(_metric(metrics, "docket_batch_size_sum") / batches_n, 2),
        "max_batch": int(_metric(metrics, "docket_batch_size_max")),
        "mean_commit_ms": round(
            1000
            * _metric(metrics, "docket_commit_seconds_sum")
            / _metric(metrics, "docket_commit_seconds_count"),
            2,
        ),
        "client_seal_seconds": round(seal_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=24)
    parser.add_argument("--drafts", type=int, default=40, help="drafts per sender")
    parser.add_argument("--receipt-batch", type=int, default=16)
    args = parser.parse_args()
    result = asyncio.run(run(args.senders, args.drafts, args.receipt_batch))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
