"""Reading a ``docket-server export`` file for an offline audit (``docket audit --log``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from client.auditor.report import Alarm
from protocol.encoding import Fields, canonical, parse
from protocol.errors import MalformedError, TooLargeError

EXPORT_MAX_LINE = 4 * 1024 * 1024


@dataclass(slots=True)
class ExportedLog:
    """A log read from ``docket-server export`` output, as stored (not yet judged)."""

    origin: str
    entries: list[bytes]
    checkpoints: list[bytes]
    alarms: list[Alarm]


def read_export(lines: Iterable[bytes]) -> ExportedLog:
    """Read a ``docket-server export`` file (JSON lines; see ``server/export.py``).

    Nothing here is trusted: an entry that is not an object is kept as its raw bytes (the
    audit then reports it at its index), and a missing index becomes an empty entry with
    a ``gap`` alarm, so every later entry keeps its position.  Raises
    :class:`~protocol.errors.ProtocolError` only if the file is not an export at all.
    """
    it = iter(lines)
    try:
        head = Fields(parse(next(it).rstrip(b"\n")), "export")
    except StopIteration:
        raise MalformedError("empty export file") from None
    head.literal("t", "docket-log")
    head.version(1)
    out = ExportedLog(origin=head.str("origin", max_len=200), entries=[], checkpoints=[], alarms=[])
    head.done()
    for number, raw in enumerate(it, start=2):
        line = raw.rstrip(b"\n")
        if not line:
            continue
        if len(line) > EXPORT_MAX_LINE:
            raise TooLargeError(f"export line {number} is too long")
        obj = parse(line, max_size=EXPORT_MAX_LINE)
        if isinstance(obj, dict) and "checkpoint" in obj:
            f = Fields(obj, "export.checkpoint")
            out.checkpoints.append(f.str("checkpoint", max_len=1 << 20).encode("utf-8"))
            f.done()
            continue
        f = Fields(obj, "export.entry")
        index = f.int("index")
        entry = f.raw("entry")
        f.done()
        while len(out.entries) < index:
            out.alarms.append(
                Alarm(
                    code="gap",
                    reason="the export has no entry at this index",
                    index=len(out.entries),
                )
            )
            out.entries.append(b"")
        if index < len(out.entries):
            raise MalformedError(f"export line {number}: entry {index} out of order")
        out.entries.append(
            canonical(entry) if isinstance(entry, dict) else str(entry).encode("utf-8")
        )
    return out
