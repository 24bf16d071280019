"""One stable vocabulary of error codes: whatever ``docket --json`` puts in
``error.code`` is a documented code, never a Python class name."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

import client.auditor.report as auditor_report
import client.auditor.summary as auditor_summary
import server.errors  # noqa: F401 - its ProtocolError subclasses are the server's codes
from client import errors
from client.cli.app import _error_line
from protocol.errors import ProtocolError

ROOT = Path(__file__).resolve().parents[2]
CODE_RE = re.compile(r"[a-z][a-z0-9_]*")


def _subclasses(cls: type) -> list[Any]:
    out: list[Any] = []
    subs: list[Any] = cls.__subclasses__()
    for sub in subs:
        out += [sub, *_subclasses(sub)]
    return out


def _literal_codes() -> set[str]:
    """Every ``code="..."`` keyword and ``code = "..."`` class attribute in client/."""
    found: set[str] = set()
    for path in (ROOT / "client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            keyword = isinstance(node, ast.keyword) and node.arg == "code"
            assign = isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "code" for t in node.targets
            )
            if not (keyword or assign):
                continue
            value = node.value  # type: ignore[attr-defined]
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(value.value)
    return found


def emitted_codes() -> set[str]:
    """Every code the CLI can put in ``error.code``."""
    codes = {c.code for c in _subclasses(ProtocolError)}
    codes |= set(errors.ALARMS) | set(errors.CLI_CODES) | _literal_codes()
    for module in (auditor_report, auditor_summary):
        codes |= {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str) and v}
    codes |= {c.code for c in _subclasses(errors.ClientError)}
    return {c for c in codes if c}


def documented() -> str:
    return (ROOT / "README.md").read_text() + (ROOT / "docs" / "CLI.md").read_text()


def test_every_code_the_cli_emits_is_documented() -> None:
    text = documented()
    missing = sorted(c for c in emitted_codes() if f"`{c}`" not in text)
    assert missing == []


def test_codes_are_snake_case_words_not_class_names() -> None:
    bad = sorted(c for c in emitted_codes() if not CODE_RE.fullmatch(c))
    assert bad == []


@pytest.mark.parametrize("cls", _subclasses(errors.ClientError))
def test_every_client_error_reports_a_vocabulary_code(cls: type) -> None:
    if cls is errors.Alarm:
        exc: BaseException = errors.Alarm("forged", "x")
    elif cls is errors.ServerError:
        exc = errors.ServerError(503, "unavailable", "x")
    else:
        exc = cls("x")
    _, code, _ = _error_line(exc)
    assert code in emitted_codes() and CODE_RE.fullmatch(code)


def test_local_failures_have_vocabulary_codes() -> None:
    for exc in (OSError(2, "No such file"), KeyboardInterrupt(), RuntimeError("bug")):
        _, code, _ = _error_line(exc)
        assert code in errors.CLI_CODES
