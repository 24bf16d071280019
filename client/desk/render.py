"""What the desk's pages show, built from the verified log (no I/O, no plaintext
beyond what a page passes in): badges, lineage, the receipt grid, filters for Jinja2."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from client.api import DocketClient
from protocol.encoding import b64e
from protocol.envelope import DraftHeader


def fmt_time(ms: int | None) -> str:
    """A log time (ms since the epoch) as UTC minutes, or a dash."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def age(ms: int | None, now: float | None = None) -> str:
    """How long ago ``ms`` was, in the largest unit that fits."""
    if not ms:
        return "-"
    seconds = max(0, int((now if now is not None else time.time()) - ms / 1000))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def short(value: bytes | None) -> str:
    return "-" if value is None else b64e(value)[:10]


FILTERS: dict[str, Any] = {"time": fmt_time, "age": age, "short": short, "b64": b64e}


@dataclass(frozen=True, slots=True)
class Check:
    """One thing the client verified about a draft, in words."""

    name: str
    ok: bool
    how: str


def checks(client: DocketClient, index: int) -> list[Check]:
    """What was checked before the draft at ``index`` was shown (an opened draft has
    passed the first three in :class:`client.opener.DraftOpener`)."""
    log = client.log
    header = log.draft(index)
    roster = log.roster_at(index)
    channel_devices = set(roster.channel_devices(header.channel))
    stored = client.state.checkpoint()
    included = stored is not None and index < stored.size
    view = client.freshness.current()
    policy = client.roster.policy
    quorum_ok = view is not None or not policy.fresh
    return [
        Check(
            "signature",
            True,
            f"signed by {log.origins[index].member}'s device, a member of {header.channel} "
            "in the roster at that point of the log",
        ),
        Check(
            "recipients",
            set(header.recipients) == channel_devices,
            f"sealed to exactly the {len(channel_devices)} device(s) of {header.channel}",
        ),
        Check("commitment", True, "the text opened to the commitment in the signed header"),
        Check(
            "log inclusion",
            included,
            f"at log index {index}, under the verified checkpoint of size "
            f"{stored.size if stored else 0}",
        ),
        Check(
            "quorum",
            quorum_ok,
            (
                f"checkpoint cosigned by {', '.join(sorted(view.cosigners)) or 'nobody'} "
                f"({view.needed})"
                if view is not None
                else f"witness policy: {policy.describe()}"
            ),
        ),
    ]


@dataclass(slots=True)
class Cell:
    state: str  # received | acknowledged | rejected | pending | sender | n/a
    text: str
    ackable: bool = False


@dataclass(slots=True)
class Row:
    index: int
    channel: str
    sender: str
    title: str | None
    version: int
    time: int
    cells: dict[str, Cell] = field(default_factory=dict)


def draft_indices(client: DocketClient) -> list[int]:
    """Log indices of every draft in the verified log, newest first."""
    log = client.log
    return [i for i in range(log.size - 1, -1, -1) if isinstance(log.parsed[i], DraftHeader)]


def board(
    client: DocketClient,
    *,
    channel: str | None = None,
    delegation: str | None = None,
    titles: dict[int, str] | None = None,
    limit: int = 200,
) -> tuple[list[Row], list[str]]:
    """The receipt grid: one row per draft, one column per recipient member."""
    roster = client.roster
    me = client.member_id()
    mine = client.device_id
    rows: list[Row] = []
    members: set[str] = set()
    now = time.time()
    for index in draft_indices(client)[:limit]:
        status = client.receipts(index)
        if channel and status.channel != channel:
            continue
        header = client.log.draft(index)
        row = Row(
            index=index,
            channel=status.channel,
            sender=status.sender,
            title=(titles or {}).get(index),
            version=header.version,
            time=header.time,
        )
        for line in status.lines:
            m = roster.members.get(line.member)
            if delegation and (m is None or m.delegation != delegation):
                continue
            members.add(line.member)
            if line.rejected:
                cell = Cell("rejected", f"rejected: {line.rejected}")
            elif line.acknowledged:
                cell = Cell("acknowledged", f"acknowledged {fmt_time(line.acknowledged)}")
            elif line.received:
                cell = Cell(
                    "received",
                    f"received {fmt_time(line.received)}",
                    ackable=line.member == me and line.device == mine,
                )
            else:
                cell = Cell("pending", f"pending for {age(header.time, now)}")
            row.cells[line.member] = cell
        if delegation and not row.cells:
            continue
        rows.append(row)
    return rows, sorted(members)


def lineage(client: DocketClient, index: int) -> dict[str, Any]:
    """The versions of the draft at ``index`` laid out for a small SVG graph."""
    header = client.log.draft(index)
    states = client.log.ledger.lineage(header.draft)
    pos = {s.header.leaf: n for n, s in enumerate(states)}
    nodes = [
        {
            "index": s.index,
            "version": s.header.version,
            "x": 30 + 70 * n,
            "y": 30,
            "current": s.index == index,
        }
        for n, s in enumerate(states)
    ]
    edges = []
    for n, s in enumerate(states):
        for parent in s.header.parents:
            if parent in pos:
                edges.append(
                    {
                        "x1": nodes[pos[parent]]["x"],
                        "x2": nodes[n]["x"],
                        "bend": abs(n - pos[parent]) > 1,
                    }
                )
    return {"nodes": nodes, "edges": edges, "width": 60 + 70 * max(1, len(states) - 1) + 20}
