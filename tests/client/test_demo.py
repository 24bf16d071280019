"""``docket demo`` end to end, as a user runs it: a subprocess, exit 0, key lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_and_passes_its_audit(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKET_KDF", "DOCKET_HOME")}
    proc = subprocess.run(
        [sys.executable, "-m", "client.cli", "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for line in (
        "founded 'Ceasefire talks",
        "talks fingerprint",
        "delegation north",
        "delegation south",
        "delegation east",
        "enrolled north-military",
        "wg-military",
        "wg-legal",
        "wg-humanitarian",
        "bilateral-north",
        "(v1, text)",
        "(v2, text)",
        "(v3, text)",
        "file prisoner-exchange-list.csv",
        "acknowledged by envoy",
        "witness policy: the mediator's witness and a majority of the delegations' witnesses",
        "clients act only on a quorum cosigned in the last",
        "envoy registered witness demo.docket.example/ceasefire-talks/witness/envoy-box "
        "(party mediator)",
        "north-head registered witness demo.docket.example/ceasefire-talks/witness/north-box "
        "(party north)",
        "witness quorum met: yes",
        "cosigned by demo.docket.example/ceasefire-talks/witness/mediator",
        # The daemons, one process per party, cosigned the final checkpoint (server push).
        "cosigned by demo.docket.example/ceasefire-talks/witness/envoy-box",
        "cosigned by demo.docket.example/ceasefire-talks/witness/north-box",
        "cosigned by demo.docket.example/ceasefire-talks/witness/south-box",
        "cosigned by demo.docket.example/ceasefire-talks/witness/east-box",
        "python -m client.witnessd serve --home",
        "): OK",
        "VERIFIED: north-military sent",
        "audit PASSED",
        "7a. A lost laptop",
        "compared aloud",
        "signed after a declared compromise",
        "History grants",
        "docket-server serve --data",
        "export DOCKET_PASSPHRASE=",
        "docket demo --clean",
        "homes/south-military",
        # The round (client.demo_round) and the envoy's non-paper.
        "a deniable non-paper",
        "tabled a sealed proposal",
        "envoy released the call",
        "redline, North -> South:",
        "AGREED by east, north, south",
        "countersigned round 1",
        "audit by the observer mission: OK",
        "VERIFIED agreed text: east, north, south agreed exactly",
    ):
        assert line in out, line
    assert (workdir / "server").is_dir()
    assert sorted(p.name for p in (workdir / "witnesses").iterdir() if p.is_dir()) == [
        "east-box", "envoy-box", "north-box", "south-box"
    ]  # fmt: skip
    assert sorted(p.name for p in (workdir / "homes").iterdir()) == sorted(
        [
            "envoy", "monitor", "north-head", "north-military", "north-legal", "south-head",
            "south-military", "south-humanitarian", "east-head", "east-legal",
            "east-humanitarian", "north-military-laptop",
        ]
    )  # fmt: skip
    # A second run into the same directory is refused rather than mixed up.
    again = subprocess.run(
        [sys.executable, "-m", "client.cli", "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert again.returncode != 0 and again.stderr.count("\n") == 1
