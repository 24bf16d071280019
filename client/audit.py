"""``Audit``: downloading the whole log and auditing it from outside.

The log is fetched unverified and judged by :mod:`client.auditor`, which replays every
entry against the pinned talks and the state of this home's previous audit; only an
audit that passed moves that state forward.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from client.auditor import DEFAULT_CHUNK, AuditReport, AuditState, audit_log
from client.core import ClientCore
from client.errors import Alarm, StateError
from client.logsync import LogSync
from protocol.encoding import JSONValue, b64e
from protocol.errors import ProtocolError
from protocol.quorum import quorum_cosigners, rule_met


class Audit:
    """Full-log audits of the talks this home belongs to."""

    def __init__(self, core: ClientCore, logsync: LogSync) -> None:
        self.core = core
        self.logsync = logsync
        # Entries the last audit() left out: newer than the last cosigned checkpoint.
        self.last_audit_pending = 0

    async def fetch_log(self) -> tuple[list[bytes], list[bytes], int]:
        """Download the log for an audit, unverified: the entries up to the newest
        checkpoint that carries the witness quorum (else the latest checkpoint), that
        checkpoint's note, and the latest checkpoint's size.

        Entries beyond the newest cosigned checkpoint are left for the next audit: the
        witnesses have not vouched for them yet, so the latest checkpoint lacking quorum
        is the normal state between syncs, not an alarm.
        """
        core = self.core
        with contextlib.suppress(Alarm):
            # The audit forms its own judgement (and reports any alarm): a failing sync
            # must not stop it.
            await self.logsync.sync()
        latest, note, text = await self.logsync.fetch_checkpoint(None)
        chosen_size, chosen_text = latest.size, text
        names = quorum_cosigners(latest, note, core.roster.witnesses())
        trusted = core.state.trusted_checkpoint()
        if not rule_met(names, core.roster) and trusted is not None:
            # Re-fetch it: more cosignatures may have arrived since.
            _, _, chosen_text = await self.logsync.fetch_checkpoint(trusted.size)
            chosen_size = trusted.size
        entries = await self.logsync.entries(0, chosen_size, partial=True)
        return entries, [chosen_text.encode("utf-8")], latest.size

    async def audit(
        self,
        *,
        workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        broken_promises: Sequence[bytes] = (),
    ) -> AuditReport:
        """Audit the whole log from outside (``client.auditor``), against the pinned
        talks and the state of this home's previous audit; store the new audit state
        when the audit passed.  ``broken_promises``: bundles clients exported, each
        reported as a ``broken_promise`` once it verifies."""
        core = self.core
        entries, notes, latest = await self.fetch_log()
        self.last_audit_pending = latest - len(entries)
        previous = None
        stored = core.state.get("audit")
        if isinstance(stored, str):
            try:
                previous = AuditState.from_bytes(stored.encode("utf-8"))
            except ProtocolError as exc:
                raise StateError("stored audit state is damaged") from exc
        if workers is None and len(entries) <= 4 * DEFAULT_CHUNK:
            workers = 1  # small logs: starting processes costs more than it saves
        report = audit_log(
            entries,
            pinned_talks=core.genesis().talks_id,
            checkpoints=notes,
            previous=previous,
            workers=workers,
            progress=progress,
            broken_promises=broken_promises,
            now=int(time.time()),
        )
        if report.ok and report.state is not None:
            core.state.set("audit", report.state.to_bytes().decode("utf-8"))
        return report

    def trusted_summary(self) -> dict[str, JSONValue]:
        """The last verified checkpoint and the last one seen with the witness quorum."""
        out: dict[str, JSONValue] = {}
        for key, value in (
            ("checkpoint", self.core.state.checkpoint()),
            ("trusted", self.core.state.trusted_checkpoint()),
        ):
            out[key] = None if value is None else {"root": b64e(value.root), "size": value.size}
        return out
