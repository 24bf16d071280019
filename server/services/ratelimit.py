"""Token-bucket rate limits, per device and per client address."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from server.errors import RateLimitedError

MAX_KEYS = 100_000


class RateLimiter:
    """One bucket per key: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[object, tuple[float, float]] = {}

    def take(self, key: object, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens or raise :class:`RateLimitedError` (spending nothing)."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            wait = (cost - tokens) / self.rate
            raise RateLimitedError("too many requests", retry_after=math.ceil(wait))
        self._buckets[key] = (tokens - cost, now)
        if len(self._buckets) > MAX_KEYS:
            self._prune(now)

    def _prune(self, now: float) -> None:
        # A bucket that has refilled completely carries no information: drop it.
        full = self.burst / self.rate
        for key, (_, last) in list(self._buckets.items()):
            if now - last >= full:
                del self._buckets[key]
        if len(self._buckets) > MAX_KEYS:  # still full of active keys: forget the oldest
            for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[
                : len(self._buckets) // 2
            ]:
                del self._buckets[key]
