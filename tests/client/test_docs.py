"""The docs are tested: every docket subcommand appears in the README and docs/CLI.md."""

from __future__ import annotations

from pathlib import Path

from client.errors import ALARMS
from tests.client.test_cli import subcommands

ROOT = Path(__file__).resolve().parents[2]


def _missing(text: str) -> list[str]:
    return [" ".join(p) for p in subcommands() if f"docket {' '.join(p)}" not in text]


def test_cli_reference_lists_every_subcommand_and_alarm() -> None:
    text = (ROOT / "docs" / "CLI.md").read_text()
    assert _missing(text) == []
    for alarm in ALARMS:
        assert f"`{alarm}`" in text


def test_readme_lists_every_subcommand() -> None:
    """The README's own CLI reference names every subcommand."""
    text = (ROOT / "README.md").read_text()
    assert _missing(text) == [], "README.md lacks these subcommands"
