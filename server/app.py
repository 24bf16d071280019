"""The application factory: wires settings, storage and services into one aiohttp app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from server import appkeys as K
from server.bodyguard import refuse_encoded_bodies
from server.clock import Clock, SteadyClock, now_ms
from server.conncap import cap_connections
from server.datadir import load_identity, lock_data_dir
from server.faults import armed as armed_fault
from server.highwater import (
    HIGH_WATER,
    NAIVE_COPY,
    HighWater,
    Rollback,
    naive_copy_suspected,
    with_wal_hint,
)
from server.keyguard import KeyGuard
from server.middlewares import error_middleware
from server.routes import setup_routes
from server.services.auth import AuthService
from server.services.blobs import BlobStore
from server.services.checkpoints import Checkpointer, write_file_atomically
from server.services.invitations import InvitationService
from server.services.log import LogService
from server.services.metrics import Gauges, Metrics
from server.services.notifier import Notifier
from server.services.quota import Quotas
from server.services.ratelimit import RateLimiter
from server.services.receipts import ReceiptService
from server.services.recovery import Recovered, recover_txn
from server.services.relay import RelayService
from server.services.roster import RosterService
from server.services.sequencer import Sequencer
from server.services.state import LogState
from server.services.talks import TalksService
from server.services.witnessing import Witnessing
from server.settings import ConfigError, Settings
from server.storage.db import Store
from server.storage.integrity import quick_check
from server.storage.ledger_index import SqliteLedgerIndex

log = logging.getLogger("docket.server")


def create_app(settings: Settings, *, clock: Clock = now_ms) -> web.Application:
    """Build the application for an initialised data directory.

    Nothing is opened here but the key file and a glance at the database for the
    origin; the store is opened, checked and the background tasks started by the
    cleanup context when the app starts, and everything is drained and closed when it
    stops.  ``clock`` is the one source of protocol time (tests pass a fake).
    """
    fault = armed_fault()  # a malformed DOCKET_FAULT is a ConfigError, before anything
    if fault is not None:
        log.warning("TEST FAULT INJECTION ARMED: SIGKILL at %s #%d", *fault)
    # Before anything opens the database (which turns its header to WAL and folds any
    # WAL in): does it look like a running server's database copied without its WAL?
    naive_copy = naive_copy_suspected(settings.db_path)
    log_key, origin = load_identity(settings.data)
    app = web.Application(
        middlewares=[error_middleware, refuse_encoded_bodies], client_max_size=settings.max_body
    )
    db_path = settings.db_path
    state = LogState(
        origin=origin,
        log_key=log_key,
        index_factory=lambda: SqliteLedgerIndex(db_path),
        key_check=KeyGuard(settings.key_path, log_key),
    )
    store = Store(settings.db_path, readers=settings.read_threads)
    # Expiry, promise and checkpoint times never go backwards (server/clock.py).
    steady = SteadyClock(clock)
    metrics = Metrics()
    notifier = Notifier()
    sequencer = Sequencer(
        state=state,
        store=store,
        notifier=notifier,
        metrics=metrics,
        clock=steady,
        batch_max=settings.batch_max,
    )
    checkpointer = Checkpointer(
        state=state,
        store=store,
        metrics=metrics,
        clock=steady,
        interval=settings.checkpoint_interval,
        path=settings.checkpoint_path,
    )
    sequencer.on_commit.append(checkpointer.poke)
    blobs = BlobStore(settings.blob_dir, store)
    relay = RelayService(
        state=state,
        store=store,
        sequencer=sequencer,
        blobs=blobs,
        notifier=notifier,
        clock=steady,
        max_draft=settings.max_draft,
        max_skew=settings.max_skew,
        long_poll_max=settings.long_poll_max,
        ws_max_clients=settings.ws_max_clients,
        ws_max_per_device=settings.ws_max_per_device,
    )

    app[K.SETTINGS] = settings
    app[K.STATE] = state
    app[K.STORE] = store
    app[K.METRICS] = metrics
    app[K.NOTIFIER] = notifier
    app[K.DEVICE_LIMITER] = RateLimiter(rate=settings.rate, burst=settings.rate_burst)
    app[K.IP_LIMITER] = RateLimiter(rate=settings.ip_rate, burst=settings.ip_burst)
    app[K.QUOTAS] = Quotas(
        drafts=settings.quota_drafts, bytes_=settings.quota_bytes, window=settings.quota_window
    )
    app[K.SEQUENCER] = sequencer
    app[K.CHECKPOINTER] = checkpointer
    app[K.BLOBS] = blobs
    app[K.AUTH] = AuthService(
        state=state,
        store=store,
        clock=steady,
        token_ttl=settings.token_ttl,
        challenge_ttl=settings.challenge_ttl,
        max_challenges=settings.max_challenges,
    )
    app[K.INVITATIONS] = InvitationService(
        state=state, store=store, clock=steady, ttl=settings.invitation_ttl
    )
    app[K.TALKS] = TalksService(
        state=state, store=store, sequencer=sequencer, checkpointer=checkpointer
    )
    app[K.ROSTER] = RosterService(
        state=state, sequencer=sequencer, clock=clock, max_skew=settings.max_skew
    )
    app[K.RELAY] = relay
    app[K.RECEIPTS] = ReceiptService(
        state=state, store=store, sequencer=sequencer, clock=clock, max_skew=settings.max_skew
    )
    app[K.LOG] = LogService(state=state, store=store, clock=clock)
    witnessing = Witnessing(
        state=state,
        log_service=app[K.LOG],
        checkpointer=checkpointer,
        metrics=metrics,
        urls=settings.witness_url_map,
        refresh=settings.witness_refresh,
        timeout=settings.witness_timeout,
    )
    checkpointer.on_publish.append(witnessing.publish)
    app[K.WITNESSING] = witnessing
    app[NAIVE_COPY] = naive_copy
    if settings.high_water is not None:
        high_water = HighWater(settings.high_water, origin=origin, log_public=state.log_public)
        high_water.check_path(settings.data)
        checkpointer.before_store.append(high_water.record)
        app[HIGH_WATER] = high_water

    def gauges() -> Gauges:
        latest = checkpointer.latest
        return Gauges(
            log_size=state.committed_size,
            checkpoint_size=0 if latest is None else latest.size,
            checkpoint_age=None if latest is None else (clock() - latest.time) / 1000,
            ws_clients=relay.ws_clients,
            waiters=notifier.subscribers,
            read_only=state.read_only is not None,
        )

    metrics.gauges = gauges
    setup_routes(app)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_on_shutdown)
    return app


async def _on_shutdown(app: web.Application) -> None:
    # Before in-flight requests are awaited: long-polls and WebSockets return now.
    app[K.NOTIFIER].close()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Start-up self-check and background tasks; on exit drain writes and close."""
    settings = app[K.SETTINGS]
    state = app[K.STATE]
    store = app[K.STORE]
    lock = lock_data_dir(settings.data)
    # A store found behind what was published whose database came without its WAL is
    # most likely a naive copy of a running server: the message says so.
    wal_missing = app[NAIVE_COPY]
    try:
        await store.open()
    except BaseException:
        os.close(lock)
        raise

    def refuse(problem: Rollback) -> None:
        if wal_missing:
            problem = with_wal_hint(problem, settings.db_path)
        state.go_read_only(problem.reason, code=problem.code)

    try:
        path = settings.checkpoint_path
        published = path.read_bytes() if path.exists() else None
        # A damaged page anywhere (not only where the self-check reads) refuses writes.
        damage = await asyncio.to_thread(quick_check, settings.db_path)
        try:
            recovered = await store.read(
                recover_txn,
                origin=state.origin,
                log_public=state.log_public,
                checkpoint_file=published,
            )
        except Exception as exc:
            # A store this broken still gets a server that says so instead of a crash.
            log.exception("the start-up self-check failed")
            recovered = Recovered(problem=f"the start-up self-check failed: {exc}")
        if damage:
            recovered.problem = f"the database file is damaged (quick_check: {damage[0]})"
        state.ledger = recovered.ledger
        state.frontier = recovered.frontier
        state.committed_size = recovered.size
        state.committed_root = recovered.root
        if recovered.problem is not None:
            refuse(Rollback(code=recovered.code, reason=recovered.problem))
        else:
            latest = recovered.latest
            if latest is not None and published != latest.note:
                # A crash between storing a checkpoint and writing the file: both were
                # checked against the store above, so bring the file up to date.
                write_file_atomically(path, latest.note)
            await app[K.BLOBS].start()
        witnessing = app[K.WITNESSING]
        await witnessing.open()
        if HIGH_WATER not in app and not settings.witness_urls:
            log.warning(
                "no high_water file and no witness_urls: a restored older backup would not "
                "be noticed before it signs (docs/OPERATIONS.md)"
            )
        if state.read_only is None and HIGH_WATER in app:
            # Before any write is accepted: what this log published, from outside the
            # data directory (server/highwater.py).
            high = await app[HIGH_WATER].check(store, size=recovered.size, latest=recovered.latest)
            if high is not None:
                refuse(high)
        if state.read_only is None:
            # Before any write is accepted: a witness that cosigned more than the store
            # holds means acknowledged entries are missing (an older backup, a lost disk).
            problem = await witnessing.check_at_startup(recovered.latest, recovered.size)
            if problem is not None:
                refuse(problem)
        log.info(
            "log %s: %d entries%s",
            state.origin,
            state.committed_size,
            "" if state.read_only is None else " (READ-ONLY)",
        )
        await app[K.AUTH].start()
        app[K.SEQUENCER].start()
        app[K.CHECKPOINTER].start(recovered.latest)
        witnessing.start()
    except BaseException:
        await app[K.WITNESSING].close()
        await store.close()
        os.close(lock)
        raise
    try:
        yield
    finally:
        try:
            app[K.NOTIFIER].close()
            await app[K.SEQUENCER].close()
            await app[K.CHECKPOINTER].close()
            await app[K.WITNESSING].close()
            await app[K.AUTH].close()
            await store.close()
        finally:
            os.close(lock)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS server context for ``--tls-cert``/``--tls-key``, or ``None``."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from None
    return context


@contextlib.asynccontextmanager
async def running(settings: Settings, *, clock: Clock = now_ms) -> AsyncIterator[str]:
    """Serve ``settings.data`` on ``settings.host:port``; yield the URL actually bound.

    On exit: stop accepting, let in-flight requests finish (``shutdown_timeout``),
    drain the sequencer and close the database.  ``docket-server serve`` is this plus
    signal handling; tests and tools can run a real server in-process with it.
    """
    context = ssl_context(settings)
    runner = web.AppRunner(
        create_app(settings, clock=clock),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout,
        # Also the limit for a connection to send a complete request head: a client
        # dribbling headers is closed when it fires (aiohttp checks for idleness).
        keepalive_timeout=settings.header_timeout,
        # Never inflate request bodies (server/bodyguard.py refuses them): aiohttp would
        # inflate a gzip bomb on the event loop as it arrives, before any handler runs.
        auto_decompress=False,
    )
    await runner.setup()
    cap_connections(runner, settings.max_conns_per_ip)
    try:
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from None
        port = int(runner.addresses[0][1])
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        yield f"{'https' if settings.tls else 'http'}://{host}:{port}"
    finally:
        await runner.cleanup()
