"""The witness daemon's commands (``python -m client.witnessd``, later ``docket witness``).

Usage::

    python -m client.witnessd init --home DIR --id ID
        (--log ORIGIN=LOG_KEY ... | --server URL --talks FINGERPRINT) [--name NAME] [--json]
    python -m client.witnessd serve --home DIR [--host 127.0.0.1] [--port 8471]
        [--log-level info]

``init`` creates the witness home (mode 0700) with a new Ed25519 key (``witness.key``,
mode 0600) and the logs to witness: each ``--log`` names an origin and the log's
checkpoint key (base64), as ``docket-server init`` prints them, which is what the
mediator needs *before* founding the talks to name the witness in the genesis policy;
or ``--server``/``--talks`` fetches the genesis from ``GET /v1/talks`` of a running
server and accepts it only if its talks fingerprint is the one given.  The witness
cosigns as ``<origin>/witness/<ID>`` (``--name`` overrides it, for one log).  It prints
the public key and, per log, its name and C2SP vkey line.

``serve`` answers ``POST /add-checkpoint`` (c2sp.org/tlog-witness) on loopback by
default, prints ``listening on http://HOST:PORT`` (the real port for ``--port 0``) and
stops cleanly on SIGTERM or SIGINT.  Errors are one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp

from client.witnessd.app import running
from client.witnessd.home import (
    HomeError,
    WitnessedLog,
    create_home,
    decode_log_key,
    load_home,
    new_log,
    vkey,
)
from protocol.errors import ProtocolError
from protocol.genesis import Genesis

PROG = "python -m client.witnessd"
DEFAULT_PORT = 8471
FETCH_TIMEOUT = 15.0
MAX_GENESIS = 1 << 20


def add_commands(sub: Any) -> None:
    """Add ``init`` and ``serve`` to an ``argparse`` subparsers object."""
    init = sub.add_parser("init", help="create a witness home, key and the logs it witnesses")
    init.add_argument("--home", type=Path, required=True, help="witness home directory")
    init.add_argument("--id", required=True, help="witness id: cosigns as ORIGIN/witness/ID")
    init.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="ORIGIN=LOG_KEY",
        help="a log to witness: its origin and checkpoint public key (repeatable)",
    )
    init.add_argument("--server", help="fetch the genesis from this Docket server")
    init.add_argument("--talks", help="the talks fingerprint the genesis must have")
    init.add_argument("--name", help="the witness key name (default ORIGIN/witness/ID)")
    init.add_argument("--json", action="store_true", help="print JSON")
    init.set_defaults(func=cmd_init)
    serve = sub.add_parser("serve", help="answer tlog-witness add-checkpoint requests")
    serve.add_argument("--home", type=Path, required=True, help="witness home directory")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port, 0 for any ({DEFAULT_PORT})"
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    serve.set_defaults(func=cmd_serve)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``witness init|serve`` under a CLI's subparsers; handlers in ``func``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "witness", help="run a standalone tlog-witness for Docket logs"
    )
    add_commands(parser.add_subparsers(dest="witness_command", required=True))
    return parser


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _digits(fingerprint: str) -> str:
    return re.sub(r"[^0-9]", "", fingerprint)


async def fetch_genesis(server: str, fingerprint: str) -> Genesis:
    """The genesis of ``server``'s talks, only if its fingerprint is ``fingerprint``."""
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(server.rstrip("/") + "/v1/talks") as resp,
    ):
        raw = await resp.content.read(MAX_GENESIS + 1)
        if resp.status != 200:
            raise HomeError(f"GET /v1/talks answered {resp.status}")
    if len(raw) > MAX_GENESIS:
        raise HomeError("the server's genesis is too large")
    try:
        genesis = Genesis.from_json(json.loads(raw)["genesis"])
    except (ValueError, KeyError, TypeError, ProtocolError):
        raise HomeError("the server did not send a valid genesis") from None
    if not _digits(fingerprint) or _digits(genesis.fingerprint) != _digits(fingerprint):
        raise HomeError(
            f"the server's talks fingerprint is {genesis.fingerprint}, not the one given"
        )
    return genesis


def _logs(args: argparse.Namespace) -> list[WitnessedLog]:
    logs = []
    for spec in args.log:
        origin, sep, key = str(spec).partition("=")
        if not sep:
            raise HomeError("--log takes ORIGIN=LOG_KEY")
        logs.append(new_log(origin, decode_log_key(key), args.id, args.name))
    if (args.server is None) != (args.talks is None):
        raise HomeError("--server and --talks go together")
    if args.server is not None:
        genesis = asyncio.run(fetch_genesis(args.server, args.talks))
        logs.append(new_log(genesis.origin, genesis.log_key, args.id, args.name))
    if args.name is not None and len(logs) > 1:
        raise HomeError("--name names the witness of one log only")
    return logs


def cmd_init(args: argparse.Namespace) -> int:
    """``init``: create the home and print the witness's public key and vkey lines."""
    try:
        home = create_home(args.home, witness_id=args.id, logs=_logs(args), rng=os.urandom)
    except (HomeError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        return _fail(str(exc) or type(exc).__name__)
    info = home.describe()
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return 0
    print(f"witness home: {info['home']}")
    print(f"public key:   {info['key']}")
    for item in home.logs:
        print(f"log {item.origin}: cosigns as {item.name}")
        print(f"  vkey: {vkey(item.name, home.public)}")
    return 0


async def _serve(args: argparse.Namespace) -> None:
    home = load_home(args.home)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(home, args.host, args.port) as url:
        print(f"listening on {url}", flush=True)
        await stop.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: run the daemon until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_serve(args))
    except (HomeError, sqlite3.Error) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="A C2SP tlog-witness for Docket.")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
