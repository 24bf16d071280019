"""Client test fixtures: a fast key-derivation setting and a throwaway home directory."""

from __future__ import annotations

from pathlib import Path

import pytest

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client test uses the minimum Argon2id cost (DOCKET_KDF=fast is test-only)."""
    monkeypatch.setenv("DOCKET_KDF", "fast")
    monkeypatch.delenv("DOCKET_HOME", raising=False)


@pytest.fixture
def passphrase(monkeypatch: pytest.MonkeyPatch) -> str:
    """Set DOCKET_PASSPHRASE for the test and return it."""
    monkeypatch.setenv("DOCKET_PASSPHRASE", PASSPHRASE)
    return PASSPHRASE


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home directory path that does not exist yet."""
    return tmp_path / "home"
