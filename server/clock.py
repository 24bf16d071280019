"""The server clock: the one place that reads the wall clock for protocol times."""

from __future__ import annotations

import time
from collections.abc import Callable

from protocol.errors import BadTimeError

Clock = Callable[[], int]
"""A source of the current time in integer milliseconds since the Unix epoch."""


def now_ms() -> int:
    """The current wall-clock time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def check_time(value: int, *, now: int, max_skew_ms: int, what: str = "record") -> None:
    """Reject a record ``time`` more than ``max_skew_ms`` away from the server clock."""
    if abs(value - now) > max_skew_ms:
        raise BadTimeError(f"{what} time is {abs(value - now) // 1000} s from the server clock")
