"""``python -m bench [protocol] [--smoke]`` — run a benchmark and print its figures."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from bench import protocol_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("mode", nargs="?", default="protocol", choices=["protocol"])
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks it works")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    results = protocol_bench.run(smoke=args.smoke)
    info = {"date": started, "python": platform.python_version(), "machine": platform.machine()}
    if args.json:
        print(json.dumps({"info": info, "results": results}, indent=2, sort_keys=True))
    else:
        print(f"# protocol benchmark {info}")
        for name, value in results.items():
            print(f"{name:32s} {value:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
