"""Synapse mode: the Synapse peer harness and Docket's load, interleaved, and their ratio.

Usage::

    python -m bench synapse --rounds 3 --seconds 20
    python -m bench synapse --harness ../shared/peers/synapse --rounds 1 --seconds 10

Each round runs, one after the other and in alternating order (so a drift in the host's
load hits both sides alike):

* **Synapse**: the harness's ``run.sh --phases mixed --duration S`` (a fresh SQLite
  database, 13 users in one room, everyone syncing and sending 2 KiB messages flat out;
  its README).  Its ``SUMMARY`` line gives ``mixed_eps``, events per second.
* **Docket**: :func:`bench.load.workload` at its maximum rate for ``S`` seconds (the
  delegation workload: 13 devices, every draft received and receipted by the 12 others,
  every receipt logged).  It gives ``drafts_per_s`` (drafts fully received).

The ratio of a round is Docket's drafts/s over Synapse's mixed events/s; the median over
rounds is reported.  Synapse runs on its own port and data directory (``SYNAPSE_PORT``,
``SYNAPSE_DIR``), so it does not disturb another run of the harness on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import load
from bench.proofs import _free_port


def _default_harness() -> Path:
    """``../shared/peers/synapse`` beside the checkout (or beside its parent, for a
    worktree kept one level deeper)."""
    repo = Path(__file__).resolve().parents[1]
    for base in (repo.parent, repo.parent.parent):
        candidate = base / "shared" / "peers" / "synapse"
        if (candidate / "run.sh").is_file():
            return candidate
    return repo.parent / "shared" / "peers" / "synapse"


ROUND_TIMEOUT = 900


def synapse_round(harness: Path, seconds: float, data: Path) -> dict[str, Any]:
    """One mixed phase of the Synapse harness; its SUMMARY fields."""
    env = {**os.environ, "SYNAPSE_PORT": str(_free_port()), "SYNAPSE_DIR": str(data)}
    started = time.perf_counter()
    proc = subprocess.run(
        ["bash", str(harness / "run.sh"), "--phases", "mixed", "--duration", str(seconds)],
        capture_output=True,
        text=True,
        timeout=ROUND_TIMEOUT,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("SUMMARY")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"the Synapse harness failed ({proc.returncode}): {' | '.join(tail)}")
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    return {"mixed_eps": float(fields["mixed_eps"]), "summary": line, "wall_s": round(wall, 1)}


def docket_round(seconds: float, clients: int) -> dict[str, Any]:
    """One max-rate run of Docket's delegation workload."""
    return asyncio.run(
        load.workload(seconds=seconds, drafts=1_000_000, rate=None, clients=clients, inline=True)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench synapse", description=__doc__)
    parser.add_argument("--harness", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="per side and round")
    parser.add_argument("--clients", type=int, default=2, help="Docket load processes")
    parser.add_argument("--synapse-dir", type=Path, default=Path("/tmp/synapse-docket-bench"))
    args = parser.parse_args(argv)
    args.harness = args.harness or _default_harness()
    if not (args.harness / "run.sh").is_file():
        print(f"no Synapse harness at {args.harness} (run.sh missing)", file=sys.stderr)
        return 2
    rows: list[tuple[float, float]] = []
    for n in range(args.rounds):
        order = ("synapse", "docket") if n % 2 == 0 else ("docket", "synapse")
        got: dict[str, float] = {}
        for side in order:
            if side == "synapse":
                s = synapse_round(args.harness, args.seconds, args.synapse_dir)
                got["synapse"] = s["mixed_eps"]
                print(f"round {n + 1} synapse: {s['mixed_eps']:.1f} events/s ({s['summary']})")
            else:
                d = docket_round(args.seconds, args.clients)
                got["docket"] = d["drafts_per_s"]
                print(
                    f"round {n + 1} docket: {d['drafts_per_s']:.1f} drafts/s "
                    f"({d['entries_per_s']:.1f} entries/s, server "
                    f"{d['server_cpu_us_per_entry']} us/entry, p99 {d['latency_p99_ms']} ms"
                    + (f", errors {d['errors']}" if d["errors"] else "")
                    + ")"
                )
        rows.append((got["docket"], got["synapse"]))
    ratios = [d / s for d, s in rows if s]
    print(
        f"docket drafts/s median {statistics.median(d for d, _ in rows):.1f}; synapse mixed "
        f"events/s median {statistics.median(s for _, s in rows):.1f}; ratio docket / synapse "
        f"median {statistics.median(ratios):.2f} (per round "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + ")"
    )
    return 0
