"""Operator basics: ``--version``, JSON log lines in UTC, request ids in problem bodies."""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import logging
import os
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from protocol.crypto import Rng
from server.cli import main
from server.datadir import init_data_dir
from server.logging_json import REQUEST_ID, JsonFormatter, configure, rfc3339_utc
from tests.server.harness import ORIGIN, Harness
from tests.server.test_cli import REPO, serving


def _utc(ts: str) -> datetime.datetime:
    assert ts.endswith("Z"), ts
    parsed = datetime.datetime.fromisoformat(ts.removesuffix("Z") + "+00:00")
    assert parsed.utcoffset() == datetime.timedelta(0)
    return parsed


# --- --version ------------------------------------------------------------------------


def test_server_version_comes_from_the_installed_distribution(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"docket-server {metadata.version('docket')}\n"


def test_version_of_both_installed_commands() -> None:
    scripts = Path(sys.executable).parent
    for command in ("docket", "docket-server"):
        out = subprocess.run(
            [str(scripts / command), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert out == f"{command} {metadata.version('docket')}\n"


# --- the formatter --------------------------------------------------------------------


def _format(record: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def test_log_lines_are_one_json_object_in_utc() -> None:
    record = logging.LogRecord("docket.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    record.created = 1_700_000_000.25
    assert _format(record) == {
        "level": "WARNING",
        "logger": "docket.x",
        "msg": "a b",
        "ts": "2023-11-14T22:13:20.250Z",
    }
    assert rfc3339_utc(0.999) == "1970-01-01T00:00:00.999Z"


def test_log_line_carries_code_request_id_fields_and_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("docket.server", logging.ERROR, __file__, 1, "failed", (), exc_info)
    record.code = "internal"
    record.fields = {"route": "/v1/inbox", "msg": "not overriding"}
    token = REQUEST_ID.set("rid-1")
    try:
        line = _format(record)
    finally:
        REQUEST_ID.reset(token)
    assert line["code"] == "internal"
    assert line["request_id"] == "rid-1"
    assert line["route"] == "/v1/inbox"
    assert line["msg"] == "failed"
    assert isinstance(line["exc"], str)
    assert "RuntimeError: boom" in line["exc"]


def test_hostile_text_cannot_forge_a_log_line_or_drive_a_terminal() -> None:
    evil = 'x\n{"level": "INFO", "msg": "forged"}\u202e\x9b31m\x1b[2J'
    record = logging.LogRecord("docket.x", logging.INFO, __file__, 1, "%s", (evil,), None)
    line = JsonFormatter().format(record)
    assert line.isascii()
    assert "\n" not in line and "\x1b" not in line
    assert json.loads(line)["msg"] == evil


def test_configure_replaces_handlers_with_one_json_handler() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        configure("warning", stream)
        logging.getLogger("docket.t").info("hidden")
        logging.getLogger("docket.t").warning("shown", extra={"code": "read_only"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.captureWarnings(False)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["code"] == "read_only"


# --- request ids in problem bodies ----------------------------------------------------


async def test_every_problem_body_names_the_request_id(talks: Harness) -> None:
    h = talks
    cases = [
        ("GET", "/v1/nothing", None, 404),
        ("DELETE", "/v1/drafts/1", None, 405),
        ("GET", "/v1/inbox", None, 401),
        ("POST", "/v1/auth/token", b"{not json", 400),
        ("GET", "/v1/log/entries?start=x", None, 401),
    ]
    for method, path, data, status in cases:
        resp = await h.request(method, path, data=data)
        assert resp.status == status, path
        body = await resp.json(content_type="application/problem+json")
        assert body["request_id"] == resp.headers["X-Request-Id"], path
        assert len(body["request_id"]) == 16
    resp = await h.request("GET", "/v1/nothing", headers={"X-Request-Id": "ticket-42"})
    assert (await resp.json(content_type=None))["request_id"] == "ticket-42"
    # A successful answer's body is unchanged; the id is only in the header.
    assert "request_id" not in await h.ok("GET", "/healthz")


# --- the real process -----------------------------------------------------------------


async def test_served_logs_are_json_lines_in_utc_with_request_ids(tmp_path: Path, rng: Rng) -> None:
    data = tmp_path / "data"
    init = init_data_dir(data, ORIGIN)
    # A zone far from UTC: the times must not follow it.
    env = {"DOCKET_LOG_LEVEL": "info", "TZ": "Asia/Kathmandu"}
    before = datetime.datetime.now(datetime.UTC)
    async with serving(data, "--host", "0.0.0.0", env=env) as server:  # noqa: S104
        async with Harness.attach(server.url, data, init, rng) as h:
            missing = await h.request("GET", "/v1/nothing", headers={"X-Request-Id": "rid-7"})
            assert missing.status == 404
            assert (await h.request("GET", "/healthz")).status == 200
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.proc.wait(), 20) == 0
    after = datetime.datetime.now(datetime.UTC)
    raw = server.log.read_text()
    lines = [json.loads(line) for line in raw.splitlines()]  # every line is JSON
    assert lines, raw
    for line in lines:
        assert {"ts", "level", "logger", "msg"} <= line.keys(), line
        stamp = _utc(line["ts"])
        assert before - datetime.timedelta(seconds=1) <= stamp <= after
    access = [line for line in lines if line["logger"] == "docket.access"]
    refused = next(line for line in access if line.get("request_id") == "rid-7")
    assert (refused["code"], refused["status"], refused["route"]) == ("not_found", 404, "unmatched")
    assert any(line["route"] == "/healthz" and "code" not in line for line in access)
    warning = next(line for line in lines if "without TLS" in line["msg"])
    assert warning["level"] == "WARNING"


def test_cli_module_runs_from_a_source_tree() -> None:
    # ``python -m server.cli --version`` is what deploy/ and the tests run.
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "--version"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=True,
    ).stdout
    assert out.startswith("docket-server ")
