"""``python -m bench annex [--size-mib N] [--smoke]``: a large annex end to end.

Against a real ``docket-server`` on loopback, with real client homes:

1. **baseline**: libsodium secretstream's raw rate, push then pull of the same bytes in
   1 MiB chunks in this process (no I/O), measured in the same run;
2. **annex**: ``docket send --annex`` of an N MiB file (seal + upload) then ``docket read
   --save`` by a recipient (download + open), each in its own process; throughput is N
   over the two wall times, and the ratio to the baseline is reported;
3. **memory**: each client process's peak RSS (``wait4``) and the server's peak RSS
   (sampled every 50 ms), for the N MiB annex and for a 10 MiB one; the goal is that
   they stay flat in the file's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

from bench.load import REPO, docket_server, rss_mib
from protocol import crypto

PASSPHRASE = "bench annex passphrase, long enough"
CHUNK = 1024 * 1024


def _cli(home: Path, *args: str) -> Any:
    from client.cli import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(["--home", str(home), "--json", *args])
    if code != 0:
        raise RuntimeError(f"docket {args[0]} failed: {err.getvalue()}")
    return json.loads(out.getvalue().strip().splitlines()[-1])


def _setup(url: str, init: dict[str, str], base: Path) -> dict[str, Path]:
    os.environ.setdefault("DOCKET_KDF", "fast")
    os.environ.setdefault("DOCKET_PASSPHRASE", PASSPHRASE)
    homes = {m: base / m for m in ("med", "nh", "sh")}
    founded = _cli(
        homes["med"], "--server", url, "talks", "found", "--token", init["founding_token"],
        "--log-key", init["log_key"], "--origin", init["origin"], "--title", "Annex bench",
        "--member", "med", "--name", "Mediator", "--quorum", "2", "--rule", "count",
        "--no-fresh-quorum",
    )  # fmt: skip
    for head, delegation in (("nh", "north"), ("sh", "south")):
        code = _cli(homes["med"], "invite", head, "--role", "head", "--delegation", delegation)
        fp = _cli(homes[head], "join", code["code"], "--name", head, "--talks",
                  founded["fingerprint"])["fingerprint"]  # fmt: skip
        _cli(homes["med"], "delegation", "create", delegation, "--name", delegation, "--head",
             head, "--fingerprint", fp)  # fmt: skip
    _cli(homes["med"], "channel", "create", "plenary", "--name", "Plenary", "--kind", "plenary",
         "--delegation", "north", "--delegation", "south", "--member", "med")  # fmt: skip
    return homes


def _file(path: Path, size: int) -> str:
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left:
            part = block[: min(left, CHUNK)]
            fh.write(part)
            digest.update(part)
            left -= len(part)
    return digest.hexdigest()


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


async def _timed(args: list[str], server_pid: int) -> tuple[float, float, float, Any]:
    """Run one client command in its own process: wall seconds, its peak RSS (MiB), the
    server's peak RSS meanwhile (MiB) and its JSON answer."""
    env = {**os.environ, "DOCKET_KDF": "fast", "DOCKET_PASSPHRASE": PASSPHRASE,
           "PYTHONPATH": str(REPO)}  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.cli", *args], stdout=subprocess.PIPE, env=env
    )
    server_peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        server_peak = max(server_peak, rss_mib(server_pid))
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"docket {args[3:5]} failed")
    return wall, usage.ru_maxrss / 1024, server_peak, json.loads(out.strip().splitlines()[-1])


def secretstream_rate(size: int) -> float:
    """MiB/s of secretstream push and pull over ``size`` bytes in 1 MiB chunks, in
    memory (the baseline): each chunk is encrypted, then decrypted by a second state."""
    key = crypto.new_stream_key(os.urandom)
    header = os.urandom(crypto.STREAM_HEADER_BYTES)
    block = os.urandom(CHUNK)
    chunks = max(1, size // CHUNK)
    push, pull = crypto.stream_pusher(key, header), crypto.stream_puller(key, header)
    start = time.perf_counter()
    for i in range(chunks):
        pull.pull(push.push(block, final=i == chunks - 1))
    return (chunks * CHUNK / (1024 * 1024)) / (time.perf_counter() - start)


async def run_async(size_mib: int, small_mib: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="docket-annex-bench-") as tmp:
        base = Path(tmp)
        async with docket_server({"DOCKET_MAX_ANNEX": str(8 * 1024**3)}) as server:
            homes = await asyncio.to_thread(_setup, server.url, server.init, base / "homes")
            results: dict[str, Any] = {}
            for label, mib in (("small", small_mib), ("large", size_mib)):
                path = base / f"annex-{mib}.bin"
                want = await asyncio.to_thread(_file, path, mib * 1024 * 1024)
                send_s, send_rss, server_send, sent = await _timed(
                    ["--home", str(homes["nh"]), "--json", "send", "plenary", str(path),
                     "--annex"], server.pid,
                )  # fmt: skip
                out = base / f"out-{mib}"
                read_s, read_rss, server_read, read = await _timed(
                    ["--home", str(homes["sh"]), "--json", "read", str(sent["index"]),
                     "--save", str(out)], server.pid,
                )  # fmt: skip
                [saved] = read["saved"]
                if await asyncio.to_thread(_digest, Path(saved)) != want:
                    raise RuntimeError("the saved annex differs from the file sent")
                results[label] = {
                    "mib": mib,
                    "send_s": round(send_s, 2),
                    "read_s": round(read_s, 2),
                    "mib_per_s": round(mib / (send_s + read_s), 1),
                    "client_peak_rss_mib": round(max(send_rss, read_rss), 1),
                    "server_peak_rss_mib": round(max(server_send, server_read), 1),
                }
                with contextlib.suppress(OSError):
                    path.unlink()
                    Path(saved).unlink()
        raw = secretstream_rate(min(size_mib, 1024) * 1024 * 1024)
        large, small = results["large"], results["small"]
        return {
            "secretstream_mib_per_s": round(raw, 1),
            **results,
            "ratio_to_secretstream": round(large["mib_per_s"] / raw, 3),
            "client_rss_growth_mib": round(
                large["client_peak_rss_mib"] - small["client_peak_rss_mib"], 1
            ),
            "server_rss_growth_mib": round(
                large["server_peak_rss_mib"] - small["server_peak_rss_mib"], 1
            ),
        }


def run(*, size_mib: int = 1024, smoke: bool = False) -> dict[str, Any]:
    return asyncio.run(run_async(4 if smoke else size_mib, 1 if smoke else 10))
