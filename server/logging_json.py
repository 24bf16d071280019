"""The server's logs: one JSON object per line, times in UTC.

Every record becomes ``{"ts", "level", "logger", "msg", ...}`` with ``ts`` in RFC 3339
UTC (``2026-12-02T19:49:01.123Z``), whatever the host's time zone, so lines from
several hosts sort and compare as text.  Two optional members make a line useful to
an operator:

* ``request_id`` -- the ``X-Request-Id`` of the request being served, the one the
  client got in the header and in the problem+json body.  The error middleware puts it
  in :data:`REQUEST_ID` for the duration of the request, so every line logged while
  serving it carries it, from whatever module;
* ``code`` -- the stable error code (docs/API.md) when the line is about a refusal
  or a failure, given as ``extra={"code": ...}``.

A record may carry further members as ``extra={"fields": {...}}`` (the access log's
route, status and duration).  A traceback goes in ``exc`` as one string: the line is
still one line.  The standard :mod:`logging` module does the rest; this is only its
``Formatter``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("docket_request_id", default=None)
"""The request id of the request this task serves (set by the error middleware)."""


def rfc3339_utc(seconds: float) -> str:
    """``seconds`` since the epoch as RFC 3339 UTC with milliseconds."""
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """Formats a :class:`logging.LogRecord` as one JSON line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": rfc3339_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        code = getattr(record, "code", None)
        if code is not None:
            line["code"] = code
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ASCII only (escapes): hostile text in a message cannot drive a terminal or forge
        # a line; default=str: a stray non-JSON value in ``fields`` must not lose the line.
        return json.dumps(line, default=str)


def configure(level: str, stream: TextIO | None = None) -> None:
    """Send every logger's records, as JSON lines, to ``stream`` (standard error)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
