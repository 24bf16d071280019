"""Readers are told when their view is not current, and clock jumps cannot fool them.

A client that only reads never signs, so it never meets ``stale_view``; a server could
show it a frozen log for ever.  Its view counts as current only while the witness quorum
has cosigned the latest verified checkpoint within the policy's ``max_age`` (600 s in
these talks) by the client's own clock; otherwise ``docket log`` says so and the client
records ``stale_log``, once per checkpoint.  The client's clock is injected
(``freshness.clock``): set forward a day, every view looks stale (never current by
mistake); set back an hour, the witnesses' cosignatures are dated in its future and are
flagged as ``clock_anomaly`` instead of counted.  Verification of the log itself depends
on indices only, so syncing works the same under every clock."""

from __future__ import annotations

import asyncio
import time

from protocol.checkpoint import Checkpoint, cosign, format_note, parse_note
from protocol.genesis import witness_name
from tests.adversarial.conftest import World, alarm_names
from tests.adversarial.proxy import Exchange

T = 30.0
MAX_AGE = 600  # the template's policy (the default)


async def _witnessed(world: World) -> None:
    """The mediator's client syncs and cosigns the latest checkpoint, now."""
    witness = world.client("med")
    assert (await witness.sync()).cosigned


async def test_reader_of_a_frozen_checkpoint_marks_its_view_not_current(world: World) -> None:
    async with asyncio.timeout(T):
        await _witnessed(world)
        frozen = await world.note()
        proxy = await world.proxy()

        def freeze(ex: Exchange) -> None:
            ex.answer(frozen, content_type="text/plain")

        proxy.before("GET /v1/log/checkpoint", freeze)
        reader = world.client("obs", url=proxy.url, keystore=True)
        await reader.sync()
        view = reader.view_status()
        assert view.current and view.reason == ""
        # The log moves on upstream; the reader keeps being shown the frozen checkpoint.
        await world.send("n-adv", "plenary", "newer proposal")
        await _witnessed(world)
        await reader.sync()
        assert reader.view_status().current  # within max_age: nothing to say yet
        reader.freshness.clock = lambda: time.time() + MAX_AGE + 5
        view = reader.view_status()
        assert not view.current and "frozen log" in view.reason
        assert alarm_names(reader).count("stale_log") == 1
        reader.view_status()
        assert alarm_names(reader).count("stale_log") == 1  # recorded once per checkpoint

        # Through the CLI, with the real clock: a frozen note whose only cosignature
        # (the mediator's, by its own key) is older than max_age.
        note = parse_note(frozen)
        cp = Checkpoint.from_body(note.text)
        name = witness_name(world.genesis.origin, "mediator")
        old = cosign(cp, name, world.person("med").keys.signing,
                     timestamp=int(time.time()) - MAX_AGE - 60)  # fmt: skip
        log_line = [sig.line() for sig in note.signatures if sig.name == world.genesis.log_name]
        stale_note = format_note(note.text, [*log_line, old])
        proxy.clear()
        proxy.before(
            "GET /v1/log/checkpoint", lambda ex: ex.answer(stale_note, content_type="text/plain")
        )
        cli_reader = world.client("obs", url=proxy.url, keystore=True)
        got = await world.cli(cli_reader, "log")
        assert got.code == 0, got.err  # reading goes on
        assert got.data["view"]["current"] is False
        assert "view NOT CURRENT" in got.err and "frozen log" in got.err
        assert "stale_log" in alarm_names(cli_reader)


async def test_client_clock_jumps_back_an_hour_and_forward_a_day(world: World) -> None:
    async with asyncio.timeout(T):
        await _witnessed(world)
        reader = world.client("obs")
        await reader.sync()
        assert reader.view_status().current

        # Forward one day: the same cosignatures are a day old.  Never current by mistake.
        reader.freshness.clock = lambda: time.time() + 86_400
        ahead = reader.view_status()
        assert not ahead.current and not ahead.future
        assert "stale_log" in alarm_names(reader)
        index = await world.send("n-adv", "plenary", "sent while the reader's clock is ahead")
        await reader.logsync.wait_for(index)  # verification depends on indices only
        assert reader.log.size == index + 1

        # Back one hour: the witness's fresh cosignature is from this clock's future.
        await _witnessed(world)
        await reader.sync()
        reader.freshness.clock = lambda: time.time() - 3600
        behind = reader.view_status()
        assert not behind.current
        assert [w.rsplit("/", 1)[-1] for w in behind.future] == ["mediator"]
        assert "clock_anomaly" in alarm_names(reader)
        assert "ahead of this clock" in behind.reason

        # The clock put right: the same cosignature counts again.
        reader.freshness.clock = time.time
        assert reader.view_status().current
