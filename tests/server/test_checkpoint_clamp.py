"""The checkpointer never dates a checkpoint before the latest one, whatever its clock."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from protocol import crypto
from server.services.checkpoints import Checkpointer
from server.services.metrics import Metrics
from server.services.state import LogState
from server.storage.db import Store
from server.storage.log import CheckpointRow


def test_checkpoint_time_before_the_latest_is_clamped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    readings = iter([1_000, 5_000])
    checkpointer = Checkpointer(
        state=LogState(origin="o", log_key=crypto.SigningKey(bytes(32))),
        store=Store(tmp_path / "unused.db"),
        metrics=Metrics(),
        clock=lambda: next(readings),  # a raw clock that was set back
        interval=1.0,
        path=tmp_path / "checkpoint.txt",
    )
    checkpointer.latest = CheckpointRow(size=3, root=bytes(32), note=b"", time=2_000)
    with caplog.at_level(logging.WARNING):
        assert checkpointer._time() == 2_000
    assert "clock anomaly" in caplog.text
    assert checkpointer.clamped == 1
    assert checkpointer._time() == 5_000  # a later reading is used as it is
    assert checkpointer.clamped == 1
