"""Making and logging acts (:mod:`protocol.acts`) for the capabilities built on them.

A capability (history grants, rounds, initials, calls for proposals) builds an act's
body; :meth:`Acts.submit` signs it on the verified roster head, after
``require_current`` (so nobody acts on a view only the host vouches for), checks it
against the client's own ledger first (a refusal there is the user's mistake, and
nothing is sent), posts it, verifies the server's promise and waits until the act is
in the verified log.  On ``stale_roster`` it syncs and re-signs once, and raises the
``stale_roster_claim`` alarm when the signed log shows no newer roster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from client.core import ClientCore, RequireCurrent, Sent, now_ms, verified_promise
from client.errors import Alarm, ServerError, UsageError
from client.logsync import LogSync
from protocol.acts import Act, make_act
from protocol.encoding import JSONValue
from protocol.errors import ProtocolError
from protocol.merkle import LeafHash


class Acts:
    """Sign, check and log acts of any registered family."""

    def __init__(
        self,
        core: ClientCore,
        logsync: LogSync,
        *,
        require_current: RequireCurrent | None = None,
    ) -> None:
        self.core = core
        self.logsync = logsync
        self._require_current = require_current or logsync.sync

    def make(self, kind: str, body: Mapping[str, JSONValue]) -> Act:
        """Sign an act of ``kind`` on the verified roster head (not submitted)."""
        core = self.core
        return make_act(
            kind=kind,
            body=body,
            device=core.keys,
            talks=core.genesis().talks_id,
            roster=core.roster.head,
            time=now_ms(),
        )

    async def submit(
        self, kind: str, body: Mapping[str, JSONValue] | Callable[[], Mapping[str, JSONValue]]
    ) -> Sent:
        """Log an act; return where it landed once it is in the verified log.  ``body``
        may be a function, called after the sync that precedes each signing, for an act
        that states the log as verified then (a round record)."""
        core = self.core

        def sign() -> Act:
            return self.make(kind, body() if callable(body) else body)

        return await submit_signed(
            core,
            self.logsync,
            self._require_current,
            path="/v1/acts",
            sign=sign,
            check=core.log.ledger.check,
        )


class _Signed(Protocol):
    @property
    def leaf(self) -> LeafHash: ...

    def to_json(self) -> dict[str, JSONValue]: ...


_T = TypeVar("_T", bound=_Signed)


async def submit_signed(
    core: ClientCore,
    logsync: LogSync,
    require_current: RequireCurrent,
    *,
    path: str,
    sign: Callable[[], _T],
    check: Callable[[_T], object],
) -> Sent:
    """Sign a record on the verified roster head (``sign``, after ``require_current``),
    check it against the client's own state first (``check``: a refusal there is the
    user's mistake, and nothing is sent), post it to ``path``, verify the promise and
    wait until it is in the verified log.  On ``stale_roster`` sync and re-sign once;
    when the signed log shows no newer roster, raise the ``stale_roster_claim`` alarm.
    (Roster changes and acts both go through here.)"""
    core.check_not_frozen()
    for attempt in (0, 1):
        await require_current()
        head = core.roster.head
        record = sign()
        try:
            check(record)
        except ProtocolError as exc:
            raise UsageError(f"{exc.code}: {exc.detail}", code=exc.code) from exc
        try:
            answer = await core.transport().post(path, record.to_json())
        except ServerError as exc:
            if exc.code == "stale_roster" and attempt == 0:
                await logsync.sync()
                if core.roster.head == head:
                    raise core.record(
                        Alarm(
                            "stale_roster_claim",
                            "the server answered stale_roster but its signed log shows "
                            "no newer roster; nothing was re-signed",
                        )
                    ) from exc
                continue
            raise
        promise = verified_promise(answer, core.genesis(), record.leaf)
        logsync.keep_promise(promise)
        await logsync.wait_for(promise.index)
        return Sent(index=promise.index, leaf=record.leaf)
    raise ServerError(409, "stale_roster", "the roster kept changing")  # pragma: no cover
