"""Counters the fault, abuse and fuzz suites report at the end of a run.

``faults injected``  server processes killed at a chosen crash point (or disk full)
``bad inputs tried`` malformed requests sent (corpus and Hypothesis)
``items checked``    acknowledged writes looked for after a fault
``items lost``       acknowledged writes missing after a fault (must be 0)
``500s seen``        answers with status 500 (must be 0)

Every test bumps them through :func:`bump`; the ``conftest.py`` of each directory prints
:func:`summary` once in pytest's terminal summary.
"""

from __future__ import annotations

from collections import Counter

NAMES = ("faults injected", "bad inputs tried", "items checked", "items lost", "500s seen")

COUNTERS: Counter[str] = Counter()
_reported = False


def bump(name: str, n: int = 1) -> None:
    """Add ``n`` to counter ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise KeyError(name)
    COUNTERS[name] += n


def summary() -> str | None:
    """The one-line report, the first time it is asked for after something was counted."""
    global _reported  # noqa: PLW0603 - one report per session
    if _reported or not COUNTERS:
        return None
    _reported = True
    return "docket robustness counters: " + ", ".join(f"{n}={COUNTERS[n]}" for n in NAMES)
