"""The server clock: the one place that reads the wall clock for protocol times."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from protocol.errors import BadTimeError

log = logging.getLogger("docket.clock")

Clock = Callable[[], int]
"""A source of the current time in integer milliseconds since the Unix epoch."""


def now_ms() -> int:
    """The current wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def check_time(value: int, *, now: int, max_skew_ms: int, what: str = "record") -> None:
    """Reject a record ``time`` more than ``max_skew_ms`` away from the server clock."""
    if abs(value - now) > max_skew_ms:
        raise BadTimeError(f"{what} time is {abs(value - now) // 1000} s from the server clock")


class SteadyClock:
    """The wall clock, never going backwards: the high-water mark of every reading.

    Expiry of tokens and challenges, promise times and checkpoint times use this clock,
    so setting the system clock back (by hand, a bad NTP server, a restored VM) cannot
    revive a credential that already expired, nor make a checkpoint older than the one
    before it.  A forward jump moves the mark forward for good: credentials issued
    before it expire early, which fails closed.  The mark is also raised from the
    store at start-up (the latest checkpoint, the stored high-water of issued tokens)
    so a clock set back while the server was stopped is caught too.  Record ``time``
    fields are still checked against the raw clock (:func:`check_time`), so a clock
    that ran ahead and was corrected does not lock clients out for as long as it ran
    ahead.
    """

    def __init__(self, wall: Clock = now_ms) -> None:
        self._wall = wall
        self._mark = 0
        self.backward_jumps = 0
        """How many times the wall clock was seen behind the mark (by more than 1 s)."""

    def __call__(self) -> int:
        now = self._wall()
        if now >= self._mark:
            self._mark = now
        elif self._mark - now > 1000:
            self.backward_jumps += 1
            if self.backward_jumps == 1 or self.backward_jumps % 1000 == 0:
                log.warning(
                    "the system clock is %d s behind the latest time seen; "
                    "keeping the latest (seen %d times)",
                    (self._mark - now) // 1000,
                    self.backward_jumps,
                )
        return self._mark

    def advance(self, value: int) -> None:
        """Raise the mark to ``value`` (a time found in the store) if it is later."""
        self._mark = max(self._mark, value)

    @property
    def wall(self) -> Clock:
        """The raw clock underneath."""
        return self._wall
