"""``python -m bench [protocol|load] [--smoke] [--json]`` — run a benchmark, print its figures.

* ``protocol`` (the default): seal/open, proofs and raw Ed25519, in one process.
* ``proofs``: large-log mode (see :mod:`bench.proofs`): ``--entries N`` builds a real
  store, measures server start-up, RSS and proofs/s over HTTP.
* ``load``: the delegation workload against a real ``docket-server`` (see
  :mod:`bench.load`): ``--seconds S --drafts N --rate R --clients C``; ``--compare DIR``
  also runs another checkout's server, ``--store DIR`` also runs on a copy of a large
  store built by ``proofs``.

* ``crowd``: N clients holding WebSockets and sending (see :mod:`bench.crowd`):
  ``--clients N --seconds S --interval I``.
* ``timing``: forbidden against non-existent drafts over HTTP (see :mod:`bench.timing`):
  ``--pairs N``.

``python -m bench --smoke`` (CI) runs a tiny version of both.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import load, protocol_bench


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["proofs"]:  # large-log mode: its own options (bench/proofs.py)
        from bench import proofs

        return proofs.main(argv[1:])
    if argv[:1] == ["crowd"]:  # many WebSockets sending: its own options (bench/crowd.py)
        from bench import crowd

        return crowd.main(argv[1:])
    if argv[:1] == ["timing"]:  # existence timing: its own options (bench/timing.py)
        from bench import timing

        return timing.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("mode", nargs="?", default=None, choices=["protocol", "load"])
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks it works")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--seconds", type=float, default=10.0, help="load: seconds per run")
    parser.add_argument("--drafts", type=int, default=20_000, help="load: at most N drafts a run")
    parser.add_argument(
        "--rate", type=float, default=None, help="load: open-loop drafts/s for the latency run"
    )
    parser.add_argument("--clients", type=int, default=2, help="load: client processes")
    parser.add_argument(
        "--no-inline",
        action="store_true",
        help="load: plain one-per-message notices and GETs for each draft (old clients)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="load: also run the server of this checkout (e.g. `git archive HEAD`), same run",
    )
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="load: also run on a copy of this large store (`python -m bench proofs` builds "
        "it, e.g. /tmp/docket-bench-1000000), same run",
    )
    args = parser.parse_args(argv)
    modes = [args.mode] if args.mode else (["protocol", "load"] if args.smoke else ["protocol"])
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    results: dict[str, Any] = {}
    if "protocol" in modes:
        results["protocol"] = protocol_bench.run(smoke=args.smoke)
    if "load" in modes:
        results["load"] = load.run(
            seconds=args.seconds,
            drafts=args.drafts,
            rate=args.rate,
            clients=args.clients,
            smoke=args.smoke,
            inline=not args.no_inline,
            compare=args.compare,
            store=args.store,
        )
    if args.json:
        print(json.dumps({"info": info, "results": results}, indent=2, sort_keys=True))
        return 0
    if "protocol" in results:
        print(f"# protocol benchmark {info}")
        for name, value in results["protocol"].items():
            print(f"{name:32s} {value:12.1f}")
    if "load" in results:
        print(f"# load benchmark {info}")
        print(load.format_table(results["load"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
