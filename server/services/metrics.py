"""Prometheus metrics, kept in plain dicts and rendered by hand (text format 0.0.4)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(slots=True)
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0
    maximum: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1
        self.maximum = max(self.maximum, value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Gauges:
    """Values read at scrape time."""

    log_size: int
    checkpoint_size: int
    checkpoint_age: float | None
    ws_clients: int
    waiters: int
    read_only: bool


class Metrics:
    """Counters and histograms of one server."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = {}
        self.entries: dict[str, int] = defaultdict(int)
        self.batches = _Histogram(BATCH_BUCKETS)
        self.commit_seconds = _Histogram(LATENCY_BUCKETS)
        self.commit_failures = 0
        self.checkpoints = 0
        self.witness_cosignatures: dict[str, int] = defaultdict(int)
        self.witness_failures: dict[tuple[str, str], int] = defaultdict(int)
        self.witness_push_seconds: dict[str, _Histogram] = {}
        self.gauges: Callable[[], Gauges] | None = None

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests[(route, method, status)] += 1
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = _Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def observe_batch(self, kinds: list[str], seconds: float) -> None:
        """Count one committed batch: its entries by kind, its size and commit time."""
        for kind in kinds:
            self.entries[kind] += 1
        self.batches.observe(len(kinds))
        self.commit_seconds.observe(seconds)

    def observe_witness_push(self, witness: str, seconds: float) -> None:
        """The latency of one add-checkpoint round trip (answered or not)."""
        hist = self.witness_push_seconds.get(witness)
        if hist is None:
            hist = self.witness_push_seconds[witness] = _Histogram(LATENCY_BUCKETS)
        hist.observe(seconds)

    def render(self) -> str:
        """The text exposition format."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        def sample(name: str, value: float, *labels: tuple[str, str]) -> None:
            out.append(f"{name}{_labels(labels)} {_number(value)}")

        def histogram(name: str, hist: _Histogram, *labels: tuple[str, str]) -> None:
            counts = hist.counts or [0] * len(hist.buckets)
            for bound, count in zip(hist.buckets, counts, strict=True):
                sample(f"{name}_bucket", count, *labels, ("le", _number(bound)))
            sample(f"{name}_bucket", hist.count, *labels, ("le", "+Inf"))
            sample(f"{name}_sum", hist.total, *labels)
            sample(f"{name}_count", hist.count, *labels)

        family("docket_requests_total", "counter", "HTTP requests by route, method and status.")
        for (route, method, status), count in sorted(self.requests.items()):
            sample(
                "docket_requests_total",
                count,
                ("route", route),
                ("method", method),
                ("status", str(status)),
            )
        family("docket_request_seconds", "histogram", "HTTP request latency by route.")
        for route, hist in sorted(self.latency.items()):
            histogram("docket_request_seconds", hist, ("route", route))
        family("docket_entries_appended_total", "counter", "Log entries committed, by kind.")
        for kind, count in sorted(self.entries.items()):
            sample("docket_entries_appended_total", count, ("kind", kind))
        family("docket_batch_size", "histogram", "Entries per group commit.")
        histogram("docket_batch_size", self.batches)
        family("docket_batch_size_max", "gauge", "Largest group commit so far.")
        sample("docket_batch_size_max", self.batches.maximum)
        family("docket_commit_seconds", "histogram", "Time to commit one batch durably.")
        histogram("docket_commit_seconds", self.commit_seconds)
        family("docket_commit_failures_total", "counter", "Batches whose commit failed.")
        sample("docket_commit_failures_total", self.commit_failures)
        family("docket_checkpoints_total", "counter", "Checkpoints signed.")
        sample("docket_checkpoints_total", self.checkpoints)
        family(
            "docket_witness_cosignatures_total", "counter", "Cosignatures collected, by witness."
        )
        for witness, count in sorted(self.witness_cosignatures.items()):
            sample("docket_witness_cosignatures_total", count, ("witness", witness))
        family(
            "docket_witness_failures_total",
            "counter",
            "Failed add-checkpoint requests, by witness and reason.",
        )
        for (witness, reason), count in sorted(self.witness_failures.items()):
            sample("docket_witness_failures_total", count, ("witness", witness), ("reason", reason))
        family(
            "docket_witness_push_seconds", "histogram", "add-checkpoint round trips, by witness."
        )
        for witness, hist in sorted(self.witness_push_seconds.items()):
            histogram("docket_witness_push_seconds", hist, ("witness", witness))
        if self.gauges is not None:
            g = self.gauges()
            family("docket_log_size", "gauge", "Committed log entries.")
            sample("docket_log_size", g.log_size)
            family("docket_checkpoint_size", "gauge", "Tree size of the latest checkpoint.")
            sample("docket_checkpoint_size", g.checkpoint_size)
            if g.checkpoint_age is not None:
                family("docket_checkpoint_age_seconds", "gauge", "Age of the latest checkpoint.")
                sample("docket_checkpoint_age_seconds", round(g.checkpoint_age, 3))
            family("docket_ws_clients", "gauge", "Open WebSocket connections.")
            sample("docket_ws_clients", g.ws_clients)
            family("docket_waiters", "gauge", "Long-polls and WebSockets waiting for news.")
            sample("docket_waiters", g.waiters)
            family("docket_read_only", "gauge", "1 when the server refuses writes.")
            sample("docket_read_only", 1 if g.read_only else 0)
        return "\n".join(out) + "\n"
