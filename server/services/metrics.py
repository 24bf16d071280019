"""Prometheus metrics of one server, kept and rendered by ``prometheus_client``.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (tests run many apps
in one process, and the library's global registry would mix them).  Three kinds of
value are exposed:

* **counted as they happen** -- requests, their latency, committed entries, group
  commits, checkpoints and witness round trips: the library's ``Counter`` and
  ``Histogram``.  The hot path (one request) looks its labelled children up in a plain
  dict, so it costs no more than the hand-kept dicts this replaced;
* **read at scrape time** -- log and checkpoint sizes, the checkpoint's age, open
  WebSockets, waiters, read-only: :attr:`Metrics.gauges` (wired by the app factory);
* **storage, read at scrape time** -- the database, WAL and blob sizes and the age of
  each witness's latest cosignature: :attr:`Metrics.storage`, an async probe awaited by
  :meth:`Metrics.scrape` before rendering (it asks the database and stats files).

Plus the library's process and platform collectors (CPU, memory, file descriptors,
start time; the Python version) and ``docket_build_info``.  Names carry their unit
(``_seconds``, ``_bytes``) and counters end in ``_total`` (docs/MONITORING.md).
"""

from __future__ import annotations

import logging
import platform
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.version import version

log = logging.getLogger("docket.metrics")

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The classic text format, which every Prometheus-compatible scraper reads."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Gauges:
    """Values read at scrape time."""

    log_size: int
    checkpoint_size: int
    checkpoint_age: float | None
    ws_clients: int
    waiters: int
    read_only: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageStats:
    """What the data directory holds, read at scrape time."""

    database_bytes: int
    wal_bytes: int
    blob_bytes: int
    blob_files: int
    cosignature_ages: Mapping[str, float]
    """Seconds since the timestamp of each witness's latest stored cosignature."""


class _ScrapeCollector(Collector):
    """Yields the values read at scrape time (``Metrics.gauges`` and the storage probe)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        gauges = self._metrics.gauges
        if gauges is not None:
            g = gauges()
            yield _gauge("docket_log_size", "Committed log entries (the tree size).", g.log_size)
            yield _gauge(
                "docket_checkpoint_size",
                "Tree size of the latest signed checkpoint.",
                g.checkpoint_size,
            )
            if g.checkpoint_age is not None:
                yield _gauge(
                    "docket_checkpoint_age_seconds",
                    "Age of the latest signed checkpoint.",
                    round(g.checkpoint_age, 3),
                )
            yield _gauge("docket_ws_clients", "Open WebSocket connections.", g.ws_clients)
            yield _gauge("docket_waiters", "Long-polls and WebSockets waiting for news.", g.waiters)
            yield _gauge("docket_read_only", "1 when the server refuses writes.", int(g.read_only))
        s = self._metrics.last_storage
        if s is not None:
            yield _gauge(
                "docket_database_size_bytes", "Size of the SQLite database file.", s.database_bytes
            )
            yield _gauge(
                "docket_wal_size_bytes", "Size of the SQLite write-ahead log file.", s.wal_bytes
            )
            yield _gauge(
                "docket_blob_size_bytes",
                "Bytes of the ciphertext files under blobs/ (small ones live in the database).",
                s.blob_bytes,
            )
            yield _gauge("docket_blob_files", "Ciphertext files under blobs/.", s.blob_files)
            age = GaugeMetricFamily(
                "docket_witness_cosignature_age_seconds",
                "Seconds since the timestamp of each witness's latest stored cosignature.",
                labels=["witness"],
            )
            for witness, seconds in sorted(s.cosignature_ages.items()):
                age.add_metric([witness], round(seconds, 3))
            yield age


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


class Metrics:
    """Counters and histograms of one server, in its own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self._requests = Counter(
            "docket_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "docket_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._entries = Counter(
            "docket_entries_appended",
            "Log entries committed, by kind.",
            ["kind"],
            registry=registry,
        )
        self._batches = Histogram(
            "docket_batch_size",
            "Entries per group commit.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._batch_max = Gauge(
            "docket_batch_size_max", "Largest group commit so far.", registry=registry
        )
        self._commit_seconds = Histogram(
            "docket_commit_seconds",
            "Time to commit one batch durably.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._commit_failures = Counter(
            "docket_commit_failures", "Batches whose commit failed.", registry=registry
        )
        self._checkpoints = Counter("docket_checkpoints", "Checkpoints signed.", registry=registry)
        self._witness_cosignatures = Counter(
            "docket_witness_cosignatures",
            "Cosignatures collected, by witness.",
            ["witness"],
            registry=registry,
        )
        self._witness_failures = Counter(
            "docket_witness_failures",
            "Failed add-checkpoint requests, by witness and reason.",
            ["witness", "reason"],
            registry=registry,
        )
        self._witness_push = Histogram(
            "docket_witness_push_seconds",
            "add-checkpoint round trips, by witness.",
            ["witness"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        Info("docket_build", "The running Docket version.", registry=registry).info(
            {"version": version(), "python": platform.python_version()}
        )
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        registry.register(_ScrapeCollector(self))
        # Labelled children by label values: labels() validates and locks on every call.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._batch_largest = 0
        self.gauges: Callable[[], Gauges] | None = None
        self.storage: Callable[[], Awaitable[StorageStats]] | None = None
        self.last_storage: StorageStats | None = None

    # -- counted as they happen -------------------------------------------------------

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self._requests.labels(route, method, str(status)),
                self._latency.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, kinds: list[str], seconds: float) -> None:
        """Count one committed batch: its entries by kind, its size and commit time."""
        for kind in kinds:
            self._entries.labels(kind).inc()
        self._batches.observe(len(kinds))
        if len(kinds) > self._batch_largest:
            self._batch_largest = len(kinds)
            self._batch_max.set(len(kinds))
        self._commit_seconds.observe(seconds)

    def commit_failed(self) -> None:
        """A batch whose commit failed."""
        self._commit_failures.inc()

    def checkpoint_signed(self) -> None:
        """One more checkpoint signed."""
        self._checkpoints.inc()

    def witness_cosigned(self, witness: str) -> None:
        """A cosignature collected from ``witness``."""
        self._witness_cosignatures.labels(witness).inc()

    def witness_failed(self, witness: str, reason: str) -> None:
        """An add-checkpoint round that yielded no cosignature, by reason."""
        self._witness_failures.labels(witness, reason).inc()

    def observe_witness_push(self, witness: str, seconds: float) -> None:
        """The latency of one add-checkpoint round trip (answered or not)."""
        self._witness_push.labels(witness).observe(seconds)

    # -- exposition -----------------------------------------------------------------

    async def scrape(self) -> bytes:
        """Read the storage figures, then render everything (text format 0.0.4)."""
        if self.storage is not None:
            try:
                self.last_storage = await self.storage()
            except (OSError, sqlite3.Error) as exc:
                # The other metrics still say something; the storage ones are left out.
                log.warning("storage metrics unavailable: %s", exc, extra={"code": "unavailable"})
                self.last_storage = None
        return generate_latest(self.registry)
