"""``python -m bench.witness_latency``: time from a draft's promise to a cosigned checkpoint.

Theory of operation
-------------------
1. A real ``docket-server`` (``python -m bench load``'s :func:`bench.load.workload`,
   default ``checkpoint_interval`` of 1 s) and ``--witnesses`` real witness daemons
   (``python -m client.witnessd serve``) on loopback.  The daemons are initialised with
   the server's origin and log key between ``server.cli init`` and ``serve``, named in
   the genesis as ``external`` witnesses with quorum = their number, and given to the
   server in ``DOCKET_WITNESS_URLS``.
2. The load: the delegation workload of :mod:`bench.load`, open loop at ``--rate``
   drafts/s (default 130: about half of the maximum ``python -m bench load`` reached in
   bench/RESULTS.md; each draft is followed by its 12 ``received`` receipts).
3. A monitor polls ``GET /v1/log/checkpoint`` every ``--poll`` seconds and notes when
   each checkpoint was first seen carrying a quorum of valid cosignatures
   (:func:`protocol.checkpoint.cosigners` with the witnesses' keys).
4. For every draft, latency = first time a quorum-cosigned checkpoint covering its log
   index was seen - the time its sender got the acceptance promise (CLOCK_MONOTONIC,
   system-wide).  The poll interval bounds the measurement error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import ORIGIN, REPO, Monitor, Server, Talks, _pct, log_size, workload
from protocol.checkpoint import cosigners, open_checkpoint
from protocol.encoding import b64d
from protocol.genesis import ExternalWitness, WitnessPolicy, witness_name

GOAL_P99_S = 2.0
GRACE_S = 15.0
"""Longest wait, after the load, for a quorum checkpoint covering the whole log."""


class _Witnesses:
    """The witness daemons of one run: their names, keys, URLs and processes."""

    def __init__(self, count: int, tmp: Path) -> None:
        self.count = count
        self.tmp = tmp
        self.keys: dict[str, bytes] = {}
        self.urls: dict[str, str] = {}
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, info: dict[str, str]) -> dict[str, str]:
        """Initialise and serve every witness for the server ``init`` printed ``info``."""
        log_key = base64.b64encode(b64d(info["log_key"])).decode()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for i in range(self.count):
            home = self.tmp / f"witness-{i}"
            init = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "client.witnessd", "init", "--home", str(home),
                "--id", f"w{i}", "--log", f"{ORIGIN}={log_key}", "--json",
                cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await init.communicate()
            if init.returncode != 0:
                raise RuntimeError("witness init failed")
            name = witness_name(ORIGIN, f"w{i}")
            self.keys[name] = b64d(json.loads(out)["key"])
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "client.witnessd", "serve", "--home", str(home),
                "--port", "0", "--log-level", "warning",
                cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            self.procs.append(proc)
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            if not line.startswith("listening on "):
                raise RuntimeError(f"witness did not start: {line!r}")
            self.urls[name] = line.split()[-1]
        return {"DOCKET_WITNESS_URLS": ",".join(f"{n}={u}" for n, u in self.urls.items())}

    def policy(self) -> WitnessPolicy:
        external = tuple(ExternalWitness(name=n, key=k) for n, k in self.keys.items())
        return WitnessPolicy(quorum=self.count, external=external)

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _monitor(witnesses: _Witnesses, poll: float) -> Monitor:
    async def watch(server: Server, talks: Talks, stop: asyncio.Event) -> list[list[float]]:
        """(first seen, size) of every quorum-cosigned checkpoint, in order."""
        seen: list[list[float]] = []
        log_key = b64d(server.init["log_key"])
        headers = {"Authorization": f"Bearer {talks.tokens[0]}"}
        # The run ends when the log holds every entry; keep watching (bounded) until a
        # quorum checkpoint covers all of it, so the last drafts are measured too.
        grace_until: float | None = None
        size = 0
        async with aiohttp.ClientSession() as session:
            while grace_until is None or time.monotonic() < grace_until:
                if stop.is_set() and grace_until is None:
                    grace_until = time.monotonic() + GRACE_S
                    size = await log_size(session, server.url)
                async with session.get(f"{server.url}/v1/log/checkpoint", headers=headers) as resp:
                    note = await resp.read()
                now = time.monotonic()
                if resp.status == 200:
                    cp, signed = open_checkpoint(
                        note, origin=ORIGIN, log_name=ORIGIN, log_key=log_key
                    )
                    cosigned = len(cosigners(cp, signed, witnesses.keys)) >= witnesses.count
                    if cosigned and (not seen or cp.size > seen[-1][1]):
                        seen.append([now, cp.size])
                if grace_until is not None and seen and seen[-1][1] >= size:
                    break
                await asyncio.sleep(poll)
        return seen

    return watch


def latencies(promised: dict[int, float], seen: list[list[float]]) -> tuple[list[float], int]:
    """Per draft: first quorum checkpoint covering its index minus its promise time;
    and how many drafts no quorum checkpoint covered within the run."""
    out: list[float] = []
    k = 0
    ordered = sorted(promised.items())
    for n, (index, t) in enumerate(ordered):
        while k < len(seen) and seen[k][1] <= index:
            k += 1
        if k == len(seen):
            return out, len(ordered) - n
        out.append(seen[k][0] - t)
    return out, 0


async def run_async(
    *, seconds: float, rate: float, witnesses: int, clients: int, poll: float
) -> dict[str, Any]:
    """One run: the server, the witnesses, the load, the monitor (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="docket-bench-witness-") as tmp:
        group = _Witnesses(witnesses, Path(tmp))
        try:
            summary = await workload(
                seconds=seconds,
                drafts=int(rate * seconds) + 13,
                rate=rate,
                clients=clients,
                server_env={"DOCKET_LOG_LEVEL": "warning"},
                on_init=group.start,
                witness=group.policy,
                monitor=_monitor(group, poll),
            )
        finally:
            await group.stop()
    seen = summary["monitor"]
    values, missing = latencies(summary["promised"], seen)
    return {
        "drafts_per_s_offered": rate,
        "drafts_per_s": summary["drafts_per_s"],
        "entries_per_s": summary["entries_per_s"],
        "drafts_measured": len(values),
        "drafts_not_covered": missing,
        "witnesses": witnesses,
        "quorum": witnesses,
        "cosigned_checkpoints_seen": len(seen),
        "promise_to_cosigned_p50_s": round(_pct(values, 0.50), 3),
        "promise_to_cosigned_p99_s": round(_pct(values, 0.99), 3),
        "promise_to_cosigned_max_s": round(max(values, default=float("nan")), 3),
        "goal_p99_le_2s": _pct(values, 0.99) <= GOAL_P99_S,
        "poll_s": poll,
        "errors": summary["errors"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.witness_latency", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration")
    parser.add_argument("--rate", type=float, default=130.0, help="open-loop drafts/s")
    parser.add_argument("--witnesses", type=int, default=4, help="witness daemons (= quorum)")
    parser.add_argument("--clients", type=int, default=2, help="client worker processes")
    parser.add_argument("--poll", type=float, default=0.01, help="checkpoint poll interval")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    result = asyncio.run(
        run_async(
            seconds=args.seconds,
            rate=args.rate,
            witnesses=args.witnesses,
            clients=args.clients,
            poll=args.poll,
        )
    )
    result["machine"] = f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}"
    result["python"] = platform.python_version()
    result["date"] = started
    result["command"] = "python -m bench.witness_latency " + shlex.join(argv or sys.argv[1:])
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
