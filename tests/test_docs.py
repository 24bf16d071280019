"""The docs are tested: every HTTP route the server registers appears in the README and
in docs/API.md, and every error code the protocol defines appears in the README."""

from __future__ import annotations

import re
from pathlib import Path

from protocol import errors

ROOT = Path(__file__).resolve().parents[1]
ROUTE_RE = re.compile(r'add_(get|post|put|delete)\(\s*f?"([^"]+)"')


def _routes() -> list[tuple[str, str]]:
    text = (ROOT / "server" / "routes.py").read_text()
    out = []
    for method, raw in ROUTE_RE.findall(text):
        path = (
            raw.replace("{INDEX}", "{index}")
            .replace("{INVITATION}", "{id}")
            .replace("{TILE}", "{path}")
            .replace("{ANNEX}", "{id}")
            .replace("{CHUNK}", "{chunk}")
        )
        out.append((method.upper(), path))
    return out


def test_routes_are_found() -> None:
    assert len(_routes()) >= 20


def test_readme_and_api_doc_list_every_route() -> None:
    readme = (ROOT / "README.md").read_text()
    api = (ROOT / "docs" / "API.md").read_text()
    for method, path in _routes():
        assert f"| {method} | `{path}`" in readme, (method, path)
        assert f"`{path}" in api, (method, path)


def _codes() -> set[str]:
    out = set()
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.ProtocolError):
            out.add(value.code)
    return out


def test_readme_lists_every_protocol_error_code() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(c for c in _codes() - {"protocol_error"} if f"`{c}`" not in readme)
    assert missing == []


def test_readme_lists_every_server_error_code() -> None:
    readme = (ROOT / "README.md").read_text()
    text = (ROOT / "server" / "errors.py").read_text()
    codes = set(re.findall(r'code = "([a-z_]+)"', text))
    assert codes
    assert sorted(c for c in codes if f"`{c}`" not in readme) == []
