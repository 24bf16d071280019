"""The operator commands of ``docket-server``: ``backup``, ``verify-backup``, ``restore``
and ``retire`` (docs/OPERATIONS.md).

Usage::

    docket-server backup        --data DIR --out FILE [--no-key] [--json]
    docket-server verify-backup FILE [--json]
    docket-server restore       FILE --data DIR [--key FILE] [--json]
    docket-server retire        --data DIR --new-origin NAME [--high-water FILE] [--json]

``retire`` ends a log for good: a store that cannot be brought back up to what the log
published (server/highwater.py) may never sign again under its origin.  The old files
move, untouched, to ``DIR/retired/<UTC time>/`` (still readable by ``export`` and
``docket audit``); a new log with a new origin and a new checkpoint key is created in
``DIR``, whose talks the mediator founds afresh.  A high-water file given with it is
set aside too, since it records the retired log.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from protocol.encoding import JSONValue, b64e, canonical
from server.backup import BackupError, Manifest, create_backup, restore_backup, verify_backup
from server.datadir import init_data_dir, lock_data_dir
from server.services.blobs import fsync_dir
from server.settings import BLOB_DIR, CHECKPOINT_FILE, DB_FILE, KEY_FILE, ConfigError
from server.storage.auth import get_meta_txn
from server.storage.db import connect

COMMANDS = ("backup", "verify-backup", "restore", "retire")
RETIRED_DIR = "retired"
LOCK_FILE = "server.lock"


def add_commands(sub: Any) -> None:
    """Add the operator commands to ``docket-server``'s subparsers."""
    p = sub.add_parser("backup", help="write a consistent backup while the server runs")
    p.add_argument("--data", type=Path, required=True, help="data directory")
    p.add_argument("--out", type=Path, required=True, help="backup file to create")
    p.add_argument(
        "--no-key", action="store_true", help="leave the checkpoint key out (keep it apart)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("verify-backup", help="check a backup file completely")
    p.add_argument("file", type=Path, help="backup file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("restore", help="restore a verified backup into a new data directory")
    p.add_argument("file", type=Path, help="backup file")
    p.add_argument("--data", type=Path, required=True, help="new (or empty) data directory")
    p.add_argument("--key", type=Path, help="checkpoint key for a backup made with --no-key")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("retire", help="retire this log for good and start a new one")
    p.add_argument("--data", type=Path, required=True, help="data directory")
    p.add_argument("--new-origin", required=True, help="origin of the new log")
    p.add_argument("--high-water", type=Path, help="the retired log's high-water file")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Run one operator command; the exit status (errors: one line, status 1 or 2)."""
    try:
        if args.command == "backup":
            return _backup(args)
        if args.command == "verify-backup":
            manifest = verify_backup(args.file)
            _print(args, _summary(manifest), f"backup {args.file} verifies: {_line(manifest)}")
            return 0
        if args.command == "restore":
            return _restore(args)
        return _retire(args)
    except BackupError as exc:
        print(f"docket-server: {exc}", file=sys.stderr)
        return 1


def _summary(manifest: Manifest) -> dict[str, JSONValue]:
    return {
        "checkpoint_size": manifest.checkpoint_size,
        "created": manifest.to_json()["created"],
        "files": len(manifest.files),
        "key_included": manifest.key_included,
        "origin": manifest.origin,
        "root": b64e(manifest.root),
        "size": manifest.size,
    }


def _line(manifest: Manifest) -> str:
    return (
        f"log {manifest.origin}, {manifest.size} entries (signed checkpoint at "
        f"{manifest.checkpoint_size}), made {manifest.to_json()['created']}"
    )


def _print(args: argparse.Namespace, doc: dict[str, JSONValue], text: str) -> None:
    print(canonical(doc).decode() if args.json else text)


def _backup(args: argparse.Namespace) -> int:
    if args.no_key:
        print(
            "docket-server: warning: the backup holds no checkpoint key; keep checkpoint.key "
            "safe apart: without it the log cannot go on (a new key is a new log)",
            file=sys.stderr,
        )
    manifest = create_backup(args.data, args.out, include_key=not args.no_key)
    _print(args, _summary(manifest), f"wrote {args.out}: {_line(manifest)}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    manifest = restore_backup(args.file, args.data, key_file=args.key)
    text = [f"restored {args.data}: {_line(manifest)}"]
    if not manifest.key_included and args.key is None:
        text.append(
            f"the backup holds no checkpoint key: copy the log's checkpoint.key into "
            f"{args.data} (mode 0600) before serving"
        )
    text.append(
        "If the log grew after this backup was made, the server stays read-only at start-up "
        "(its witnesses and --high-water know): restore a newer backup, or retire the log."
    )
    _print(args, _summary(manifest), "\n".join(text))
    return 0


def _retire(args: argparse.Namespace) -> int:
    data: Path = args.data
    if not (data / DB_FILE).is_file():
        raise ConfigError(f"{data} is not a Docket data directory (no {DB_FILE})")
    lock = lock_data_dir(data)  # the server must not be running
    try:
        conn = connect(data / DB_FILE, readonly=True)
        try:
            raw = get_meta_txn(conn, "origin")
        finally:
            conn.close()
        old_origin = raw.decode("utf-8", "replace") if raw else ""
        if args.new_origin == old_origin:
            raise ConfigError("the new origin must differ from the retired log's")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        archive = data / RETIRED_DIR / stamp
        if archive.exists():
            raise ConfigError(f"{archive} already exists: try again in a second")
        archive.mkdir(mode=0o700, parents=True)
        moved = []
        for name in (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", KEY_FILE, CHECKPOINT_FILE):
            if (data / name).exists():
                os.replace(data / name, archive / name)
                moved.append(name)
        if (data / BLOB_DIR).exists():
            os.replace(data / BLOB_DIR, archive / BLOB_DIR)
            moved.append(BLOB_DIR)
        note = {"new_origin": args.new_origin, "origin": old_origin, "retired": stamp}
        (archive / "RETIRED.json").write_bytes(canonical(note) + b"\n")
        fsync_dir(archive)
        set_aside = None
        if args.high_water is not None and args.high_water.exists():
            set_aside = args.high_water.with_name(f"{args.high_water.name}.retired-{stamp}")
            os.replace(args.high_water, set_aside)
        result = init_data_dir(data, args.new_origin, keep=frozenset({RETIRED_DIR, LOCK_FILE}))
        fsync_dir(data)
    finally:
        os.close(lock)
    doc: dict[str, JSONValue] = {
        "archive": str(archive),
        "founding_token": b64e(result.founding_token),
        "log_key": b64e(result.log_key),
        "origin": result.origin,
        "retired_origin": old_origin,
    }
    lines = [
        f"retired the log {old_origin!r}: its files are in {archive} (export and audit them "
        "there; never serve them again)",
        f"new log:        {result.origin}",
        f"log key:        {b64e(result.log_key)}",
        f"founding token: {b64e(result.founding_token)}",
        "The mediator founds new talks with these values; every party joins them afresh.",
    ]
    if set_aside is not None:
        lines.append(f"the retired log's high-water file is now {set_aside}")
    _print(args, doc, "\n".join(lines))
    return 0
