"""Per-participant quotas: drafts and ciphertext bytes per window.

Rate limits (server/services/ratelimit.py) smooth bursts of requests per device; a
quota bounds what one participant (a roster *member*, whatever its devices) may put
into the log and onto the disk over a longer window, so one compromised or runaway
account cannot fill the disk or drown the others' inboxes.  Both are token buckets
refilled evenly over ``quota_window`` seconds: ``quota_drafts`` uploads and
``quota_bytes`` bytes of upload body.  A draft is counted when its upload starts, its
bytes as they arrive, so an upload over the byte quota is cut off mid-stream without
being logged.  Exceeding either is ``429 quota_exceeded`` with ``Retry-After``.
``0`` switches a quota off.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from server.errors import QuotaExceededError, RateLimitedError
from server.services.ratelimit import RateLimiter


class Quotas:
    """The drafts and bytes buckets of every participant."""

    def __init__(
        self,
        *,
        drafts: int,
        bytes_: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._drafts = (
            RateLimiter(rate=drafts / window, burst=drafts, clock=clock) if drafts > 0 else None
        )
        self._bytes = (
            RateLimiter(rate=bytes_ / window, burst=bytes_, clock=clock) if bytes_ > 0 else None
        )

    def draft(self, member: str) -> None:
        """Count one draft upload for ``member`` (``429 quota_exceeded`` past the quota)."""
        if self._drafts is None:
            return
        try:
            self._drafts.take(member)
        except RateLimitedError as exc:
            raise QuotaExceededError(
                "draft quota exceeded for this participant", retry_after=exc.retry_after
            ) from None

    async def metered(self, member: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks``, charging their bytes to ``member`` as they arrive."""
        async for chunk in chunks:
            if self._bytes is not None and chunk:
                try:
                    self._bytes.take(member, float(len(chunk)))
                except RateLimitedError as exc:
                    raise QuotaExceededError(
                        "upload byte quota exceeded for this participant",
                        retry_after=exc.retry_after,
                    ) from None
            yield chunk
