"""Roster and channel changes, and acts: checked by the ledger, logged by the sequencer."""

from __future__ import annotations

from protocol.acts import Act
from protocol.receipt import Promise
from protocol.roster import RosterChange
from server.clock import Clock, check_time
from server.services.sequencer import Sequencer
from server.services.state import LogState


class RosterService:
    """Submit roster and channel changes, and acts, to the sequencer."""

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

    async def submit_act(self, act: Act) -> Promise:
        """Log a signed act.  Any roster device may relay it (as a change): the ledger
        checks its signer, its roster head and its family's rules."""
        self._state.require_ledger()
        check_time(act.time, now=self._clock(), max_skew_ms=self._max_skew_ms, what="act")
        [promise] = await self._sequencer.submit([act])
        return promise
