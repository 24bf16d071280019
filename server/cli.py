"""``docket-server``: initialise a data directory, or serve it.

Usage::

    docket-server init  --data DIR --origin NAME [--json]
    docket-server export --data DIR [--out FILE]
    docket-server serve --data DIR [--host 127.0.0.1] [--port 8470] [--config FILE.toml]
                        [--tls-cert CERT --tls-key KEY] [--log-level info]
                        [--high-water FILE]
    docket-server backup|verify-backup|restore|retire ...   (server/opscli.py)

Every ``serve`` setting can also come from ``DOCKET_<NAME>`` environment variables or
the TOML file (``--config`` or ``DOCKET_CONFIG``; precedence: command line >
environment > file > defaults).  ``serve`` prints one line ``listening on
http://HOST:PORT`` (the real port when ``--port 0``), warns loudly on stderr when it
binds a non-loopback address without TLS, and on SIGTERM or SIGINT stops accepting,
finishes in-flight writes, drains the sequencer and closes the database.
Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path

from protocol.encoding import b64e, canonical
from server.app import running
from server.datadir import init_data_dir
from server.export import export_log
from server.opscli import COMMANDS as OPS_COMMANDS
from server.opscli import add_commands as add_ops_commands
from server.opscli import run as run_ops
from server.settings import DB_FILE, ConfigError, Settings

PROG = "docket-server"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Docket relay and log server.")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create a data directory, key and founding token")
    init.add_argument("--data", type=Path, required=True, help="data directory to create")
    init.add_argument("--origin", required=True, help="log origin, e.g. talks.example.org/2025")
    init.add_argument("--json", action="store_true", help="print JSON")
    export = sub.add_parser(
        "export", help="write the stored log (entries, checkpoints) for offline audit"
    )
    export.add_argument("--data", type=Path, required=True, help="data directory")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    serve = sub.add_parser("serve", help="serve an initialised data directory")
    serve.add_argument("--data", type=Path, help="data directory (or DOCKET_DATA)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind, 0 for any (default 8470)")
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain")
    serve.add_argument("--tls-key", type=Path, help="PEM private key")
    serve.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    serve.add_argument("--high-water", type=Path, help="high-water file outside the data dir")
    add_ops_commands(sub)
    return parser


def _init(args: argparse.Namespace) -> int:
    result = init_data_dir(args.data, args.origin)
    if args.json:
        print(
            canonical(
                {
                    "data": str(result.data),
                    "founding_token": b64e(result.founding_token),
                    "log_key": b64e(result.log_key),
                    "origin": result.origin,
                }
            ).decode()
        )
    else:
        print(f"initialised {result.data}")
        print(f"origin:         {result.origin}")
        print(f"log key:        {b64e(result.log_key)}")
        print(f"founding token: {b64e(result.founding_token)}")
        print("The founding token is shown once: hand it to the mediator to found the talks.")
    return 0


def _export(args: argparse.Namespace) -> int:
    data: Path = args.data
    db_path = data / DB_FILE
    if not db_path.is_file():
        raise ConfigError(f"{data} is not a Docket data directory (no {DB_FILE})")
    if args.out is None:
        out = sys.stdout.buffer
        entries, checkpoints = export_log(db_path, out.write)
        out.flush()
    else:
        with open(args.out, "xb") as fh:
            entries, checkpoints = export_log(db_path, fh.write)
            fh.flush()
            os.fsync(fh.fileno())
    print(f"exported {entries} entries and {checkpoints} checkpoint(s)", file=sys.stderr)
    return 0


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


async def _serve(settings: Settings) -> None:
    async with running(settings) as url:
        if not settings.tls and not settings.loopback:
            print(
                f"WARNING: serving {settings.host} without TLS: bearer tokens and metadata "
                "cross the network in the clear. Use --tls-cert/--tls-key or a TLS proxy.",
                file=sys.stderr,
                flush=True,
            )
        print(f"listening on {url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logging.getLogger("docket.server").info("shutting down")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``docket-server``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "export":
            return _export(args)
        if args.command in OPS_COMMANDS:
            return run_ops(args)
        settings = Settings.load(
            cli={
                "data": args.data,
                "host": args.host,
                "port": args.port,
                "tls_cert": args.tls_cert,
                "tls_key": args.tls_key,
                "log_level": args.log_level,
                "high_water": args.high_water,
            },
            env=os.environ,
            config=args.config or _env_path("DOCKET_CONFIG"),
        )
        logging.basicConfig(
            level=settings.log_level.upper(),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        asyncio.run(_serve(settings))
        return 0
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
