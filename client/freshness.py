"""A fresh quorum before acting: the client seals, signs a change or a receipt only on a
view that the witness quorum vouched for recently.

Theory of operation
-------------------
The host alone can show a client any log its key signed, including an old one that
lacks a roster change (a member's removal, say).  Verifying afterwards would be too
late: the content key would already be wrapped for the removed member.  So before it
signs anything, the client asks (:meth:`Freshness.require_current`):

1. sync (verify the latest checkpoint, apply the new entries, cosign if a witness);
2. take the checkpoints it holds — the latest verified one and the latest one seen with
   the quorum — and evaluate each under the roster at its size
   (:func:`protocol.quorum.evaluate`) with this machine's clock and the last timestamp
   accepted from each witness (a witness never goes back in time: an older line is a
   replay and does not count);
3. if one of them is *current* (the policy's rule met by cosignatures at most
   ``max_age`` old and none from the future), act;
4. otherwise wait, bounded in time (:data:`CURRENT_WAIT`) and in rounds, for the
   witnesses to cosign (the server pushes checkpoints to always-on witnesses and
   re-submits them on a quiet log), then refuse with ``stale_view`` and one line on what
   to do.

Witnesses re-cosign only the checkpoint they hold as latest, so a fresh cosignature on
a checkpoint means it was the witnesses' view at most ``max_age`` ago: a withheld change
can mislead this client for at most that long.  Reading drafts that already verified
needs none of this and works offline.

Readers (:meth:`Freshness.reader_view`).  A client that only reads never reaches
``require_current``, so a server could show it a frozen log for ever.  Whatever the
policy's ``fresh`` flag, the view it reads is *current* only while the latest verified
checkpoint (with the newest cosignatures seen for its size) carries the quorum's
cosignatures at most ``max_age`` old (the same rule as above); otherwise it is marked
not current, shown by ``docket log``, and recorded once per checkpoint size as
``stale_log``.  A cosignature dated more than
:data:`~protocol.quorum.MAX_FUTURE` ahead of this clock does not count and is recorded
as ``clock_anomaly`` (one of the two clocks is wrong): a clock set back cannot make an
old view look current, and a clock set forward only makes views look stale.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from client.core import ClientCore
from client.errors import Alarm
from client.logsync import LATEST_NOTE_KEY, LogSync
from client.state import StoredCheckpoint
from protocol.checkpoint import Checkpoint, parse_note
from protocol.encoding import JSONValue
from protocol.errors import ProtocolError
from protocol.quorum import MAX_FUTURE, QuorumView, evaluate

CURRENT_WAIT = 20.0  # seconds to wait for the witnesses before refusing
POLL_FIRST, POLL_MAX, MAX_ROUNDS = 0.1, 1.0, 200
SEEN_KEY = "cosignatures_seen"  # state: witness name -> last timestamp accepted
REPORTED_KEY = "view_reported"  # state: {alarm name: checkpoint size already recorded}


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderView:
    """Whether the verified view is current (:meth:`Freshness.reader_view`)."""

    current: bool
    size: int
    newest: int | None
    """Timestamp (s) of the newest counted cosignature on the latest checkpoint."""
    max_age: int
    reason: str
    """Why the view is not current ("" when it is)."""
    future: tuple[str, ...] = ()
    """Witnesses whose cosignature is dated in this clock's future."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "current": self.current,
            "future": list(self.future),
            "max_age": self.max_age,
            "newest_cosignature": self.newest,
            "reason": self.reason,
            "size": self.size,
        }


class Freshness:
    """Decides whether this client's view is current enough to act on."""

    def __init__(self, core: ClientCore, logsync: LogSync, *, wait: float = CURRENT_WAIT):
        self.core = core
        self.logsync = logsync
        self.wait = wait
        self.clock: Callable[[], float] = time.time  # seconds; tests move it

    def _evaluate(
        self, stored: StoredCheckpoint, now: int, *, remember: bool = True
    ) -> QuorumView | None:
        log = self.core.log
        if stored.size > log.size:
            return None
        try:
            note = parse_note(stored.note.encode("utf-8"))
            checkpoint = Checkpoint.from_body(note.text)
        except ProtocolError:
            return None
        seen: dict[str, int] = dict(self.core.state.get(SEEN_KEY) or {})
        view = evaluate(checkpoint, note, log.roster_at(stored.size), now=now, last_seen=seen)
        changed = False
        for name, ts in view.cosigners.items():
            if ts > seen.get(name, 0):
                seen[name] = ts
                changed = True
        if changed and remember:
            self.core.state.set(SEEN_KEY, seen)
        return view

    def current(self, now: int | None = None) -> QuorumView | None:
        """The view of the first held checkpoint that is current, else ``None``."""
        now = int(self.clock()) if now is None else now
        state = self.core.state
        for stored in (state.checkpoint(), state.trusted_checkpoint()):
            if stored is None:
                continue
            view = self._evaluate(stored, now)
            if view is not None and view.fresh:
                return view
        return None

    def reader_view(self, now: int | None = None) -> ReaderView:
        """Is the latest verified checkpoint vouched for by the quorum within ``max_age``
        (by this client's clock), whatever the policy's ``fresh`` flag?"""
        now = int(self.clock()) if now is None else now
        stored = self.core.state.checkpoint()
        max_age = self.core.roster.policy.max_age
        if stored is None:
            return ReaderView(
                current=False, size=0, newest=None, max_age=max_age, reason="nothing verified yet"
            )
        latest = self.core.state.get(LATEST_NOTE_KEY)
        if isinstance(latest, dict) and latest.get("size") == stored.size:
            note = latest.get("note")
            if isinstance(note, str):
                stored = StoredCheckpoint(size=stored.size, root=stored.root, note=note)
        # Judged, not remembered: what a reader sees must not change what counts as a
        # replay when this client next signs (require_current).
        view = self._evaluate(stored, now, remember=False)
        if view is None:
            return ReaderView(
                current=False,
                size=stored.size,
                newest=None,
                max_age=max_age,
                reason="the verified checkpoint cannot be evaluated",
            )
        future = tuple(sorted(n for n, why in view.rejected.items() if "future" in why))
        newest = max(view.cosigners.values(), default=None)
        if view.fresh:
            return ReaderView(
                current=True, size=stored.size, newest=newest, max_age=max_age, reason="",
                future=future,
            )  # fmt: skip
        if future:
            reason = (
                f"cosignatures by {', '.join(future)} are dated more than {MAX_FUTURE} s "
                "ahead of this clock"
            )
        elif not view.met:
            reason = (
                f"the checkpoint of size {stored.size} lacks the witness quorum ({view.needed})"
            )
        else:
            age = "never" if newest is None else f"{now - newest} s ago"
            reason = (
                f"the witness quorum ({view.needed}) last vouched for the checkpoint of size "
                f"{stored.size} {age}, more than max_age ({max_age} s): the server may be "
                "showing a frozen log"
            )
        return ReaderView(
            current=False, size=stored.size, newest=newest, max_age=max_age, reason=reason,
            future=future,
        )  # fmt: skip

    def check_reader_view(self, now: int | None = None) -> ReaderView:
        """:meth:`reader_view`, recording ``stale_log`` (a view no longer current) and
        ``clock_anomaly`` (a cosignature from the future) once per checkpoint size."""
        view = self.reader_view(now)
        if view.size == 0:
            return view
        state = self.core.state
        reported: dict[str, int] = dict(state.get(REPORTED_KEY) or {})
        wanted = []
        if view.future:
            wanted.append(("clock_anomaly", view.reason))
        if not view.current and not view.future:
            wanted.append(("stale_log", "view not current: " + view.reason))
        changed = False
        for name, detail in wanted:
            if reported.get(name) != view.size:
                self.core.record(Alarm(name, detail))
                reported[name] = view.size
                changed = True
        if changed:
            state.set(REPORTED_KEY, reported)
        return view

    async def require_current(self) -> QuorumView | None:
        """Sync until a fresh quorum vouches for the view, or raise ``stale_view``.

        Under a policy without ``fresh`` this is a sync, as clients did before."""
        await self.logsync.sync()
        if not self.core.roster.policy.fresh:
            return None
        deadline = time.monotonic() + self.wait
        delay = POLL_FIRST
        for round_ in range(MAX_ROUNDS):
            if round_:
                await self.logsync.sync()
            view = self.current()
            if view is not None:
                return view
            if time.monotonic() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)
        policy = self.core.roster.policy
        raise Alarm(
            "stale_view",
            f"no fresh witness quorum ({policy.describe()}) vouches for this view after "
            f"{self.wait:.0f} s, so nothing was signed: check that the witnesses are "
            "running ('docket witness serve', 'docket log' shows the cosigners) and try again",
        )
