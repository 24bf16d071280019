"""A small act family for testing the act framework itself (:mod:`protocol.acts`).

``tally.add`` (body ``{"n": 1..10}``) adds to the signer's member's tally, heads only;
``tally.freeze`` (body ``{"channel": id}``, mediator only) makes the ledger refuse later
drafts to that channel.  Registered by the :func:`tally_family` fixture only, so the
protocol's own kinds are untouched elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from protocol import acts
from protocol.acts import Act, ActContext
from protocol.envelope import DraftHeader
from protocol.errors import BadValueError, UnauthorisedChangeError
from protocol.roster import ROLE_HEAD, ROLE_MEDIATOR


@dataclass
class TallyState:
    totals: dict[str, int] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    applied_at: list[int] = field(default_factory=list)


class Tally:
    name = "tally"
    kinds = frozenset({"tally.add", "tally.freeze"})

    def new_state(self) -> TallyState:
        return TallyState()

    def check(self, ctx: ActContext, act: Act) -> None:
        if act.kind == "tally.add":
            n = act.body.get("n")
            if set(act.body) != {"n"} or not isinstance(n, int) or not 1 <= n <= 10:
                raise BadValueError("tally.add takes {n: 1..10}")
            if ctx.member.role != ROLE_HEAD:
                raise UnauthorisedChangeError("only heads add to a tally")
        else:
            channel = act.body.get("channel")
            if set(act.body) != {"channel"} or not isinstance(channel, str):
                raise BadValueError("tally.freeze takes {channel}")
            ctx.roster.channel(channel)
            if ctx.member.role != ROLE_MEDIATOR:
                raise UnauthorisedChangeError("only the mediator freezes a channel")

    def apply(self, ctx: ActContext, act: Act) -> None:
        state: TallyState = ctx.state
        if act.kind == "tally.add":
            n = act.body["n"]
            assert isinstance(n, int)
            state.totals[ctx.member.id] = state.totals.get(ctx.member.id, 0) + n
        else:
            channel = act.body["channel"]
            assert isinstance(channel, str)
            state.frozen.add(channel)
        state.applied_at.append(ctx.index)

    def check_draft(self, ctx: ActContext, header: DraftHeader) -> None:
        state: TallyState = ctx.state
        if header.channel in state.frozen:
            raise BadValueError(f"channel {header.channel} is frozen")


def registered() -> Iterator[Tally]:
    family = Tally()
    acts.register(family)
    try:
        yield family
    finally:
        acts.unregister(family.name)
