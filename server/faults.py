"""Test-only crash points: ``DOCKET_FAULT=<point>[@<n>]`` SIGKILLs the server there.

The fault-injection tests (``tests/faults``) start ``docket-server serve`` with this
variable to prove that a crash at any step of the append path loses nothing that was
acknowledged and leaves no half-written rows.  Unset (always, outside those tests) it is
inert: :func:`crash_point` is one cached lookup and a comparison.  The environment is
read in exactly one place, :func:`armed`.

Points, in the order an append meets them:

=====================  ====================================================================
``upload.blob``        a draft's ciphertext is checked (a large one persisted as a file),
                       its header not yet sequenced
``append.begin``       inside the batch transaction: after ``BEGIN``, before any row
``append.entries``     after the ``entries`` rows, before the Merkle nodes and side rows
``append.commit``      after ``COMMIT``, before any promise is handed out
``checkpoint.signed``  a checkpoint is signed, not yet stored
``checkpoint.stored``  stored in the database, ``checkpoint.txt`` not yet written
=====================  ====================================================================

``@n`` kills the process the n-th time the point is reached (default: the first).
"""

from __future__ import annotations

import functools
import os
import signal
import threading

from server.settings import ConfigError

ENV = "DOCKET_FAULT"
POINTS = frozenset(
    {
        "upload.blob",
        "append.begin",
        "append.entries",
        "append.commit",
        "checkpoint.signed",
        "checkpoint.stored",
    }
)

_hits: dict[str, int] = {}
_lock = threading.Lock()  # the append points run on the writer thread


@functools.cache
def armed() -> tuple[str, int] | None:
    """The armed ``(point, n)`` from ``DOCKET_FAULT``, or ``None`` (read once).

    Raises :class:`ConfigError` for an unknown point, so a typo never silently disarms
    a test.
    """
    raw = os.environ.get(ENV, "")
    if not raw:
        return None
    point, _, count = raw.partition("@")
    if point not in POINTS or (count and not count.isdigit()) or count == "0":
        raise ConfigError(
            f"{ENV}={raw!r}: expected one of {', '.join(sorted(POINTS))}, optionally @N"
        )
    return point, int(count or 1)


def crash_point(point: str) -> None:
    """SIGKILL this process if ``DOCKET_FAULT`` arms ``point`` and its count is reached."""
    fault = armed()
    if fault is None or fault[0] != point:
        return
    with _lock:
        _hits[point] = _hits.get(point, 0) + 1
        if _hits[point] >= fault[1]:
            os.kill(os.getpid(), signal.SIGKILL)
