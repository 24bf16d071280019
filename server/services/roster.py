"""Roster and channel changes: checked by the ledger, logged by the sequencer."""

from __future__ import annotations

from protocol.receipt import Promise
from protocol.roster import RosterChange
from server.clock import Clock, check_time
from server.services.sequencer import Sequencer
from server.services.state import LogState


class RosterService:
    """Submit roster and channel changes to the sequencer."""

    def __init__(
        self, *, state: LogState, sequencer: Sequencer, clock: Clock, max_skew: float
    ) -> None:
        self._state = state
        self._sequencer = sequencer
        self._clock = clock
        self._max_skew_ms = int(max_skew * 1000)

    async def submit(self, change: RosterChange) -> Promise:
        """Log a signed change.  Any roster device may relay it; the ledger checks that
        its author holds the authority and signed it."""
        self._state.require_ledger()
        check_time(change.time, now=self._clock(), max_skew_ms=self._max_skew_ms, what="change")
        [promise] = await self._sequencer.submit([change])
        return promise
