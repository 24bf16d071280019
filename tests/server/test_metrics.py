"""``/metrics`` through prometheus_client: one registry per app, process and build
info, and the storage figures an operator alarms on."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

import pytest

from protocol.checkpoint import cosign
from protocol.crypto import Rng
from protocol.genesis import witness_name
from server.clock import now_ms
from server.services.storage_stats import StorageProbe
from tests.server.harness import ORIGIN, Harness
from tests.server.promtext import types, value


async def _scrape(h: Harness) -> str:
    resp = await h.request("GET", "/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return await resp.text()


async def test_process_platform_and_build_info(talks: Harness) -> None:
    text = await _scrape(talks)
    kinds = types(text)
    assert kinds["process_cpu_seconds"] == "counter"
    for gauge in (
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ):
        assert kinds[gauge] == "gauge"
        assert (value(text, gauge) or 0) > 0
    build = {"version": metadata.version("docket"), "python": platform.python_version()}
    assert value(text, "docket_build_info", **build) == 1
    assert "python_info" in kinds


async def test_storage_figures_match_the_data_directory(talks: Harness) -> None:
    h = talks
    sender = h.people["n-adv"]
    await h.send(sender, h.seal(sender, "plenary", "y" * 100_000))  # over 64 KiB: a file
    await h.send(sender, h.seal(sender, "plenary", "small"))  # in the database
    cp, _, _ = await h.checkpoint()
    head = h.people["n-head"]
    witness = witness_name(ORIGIN, "north")
    signed_at = now_ms() // 1000 - 100
    line = cosign(cp, witness, head.keys.signing, timestamp=signed_at)
    await h.ok(
        "POST", "/v1/log/cosignatures", person=head, body={"signature": line, "size": cp.size}
    )
    text = await _scrape(h)
    db = h.settings.db_path
    assert value(text, "docket_database_size_bytes") == db.stat().st_size
    assert value(text, "docket_wal_size_bytes") == Path(f"{db}-wal").stat().st_size
    blobs = [p for p in h.settings.blob_dir.iterdir() if p.is_file()]
    assert len(blobs) == 1
    assert value(text, "docket_blob_files") == 1
    assert value(text, "docket_blob_size_bytes") == blobs[0].stat().st_size > 100_000
    age = value(text, "docket_witness_cosignature_age_seconds", witness=witness)
    assert age is not None and 99 <= age <= 160
    assert value(text, "docket_log_size") == h.require_ledger().size == cp.size
    assert value(text, "docket_checkpoint_size") == cp.size
    assert (value(text, "docket_checkpoint_age_seconds") or -1) >= 0


async def test_metrics_still_answer_when_storage_cannot_be_read(
    talks: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(self: StorageProbe) -> object:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(StorageProbe, "__call__", failing)
    text = await _scrape(talks)
    assert value(text, "docket_database_size_bytes") is None
    assert value(text, "docket_log_size") == talks.require_ledger().size


async def test_each_app_counts_only_its_own_requests(tmp_path: Path, rng: Rng) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    os.mkdir(one)
    os.mkdir(two)
    async with Harness.start(one, rng) as a, Harness.start(two, rng) as b:
        for _ in range(3):
            await a.request("GET", "/healthz")
        text_a, text_b = await _scrape(a), await _scrape(b)
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(text_a, "docket_requests_total", **healthz) == 3
    assert value(text_b, "docket_requests_total", **healthz) is None
