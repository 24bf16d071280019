"""The installed security-critical dependencies are at or above their security floors.

The floors live in one place, ``pyproject.toml``'s ``[project] dependencies`` (each with
a comment naming the advisories that set it); this test reads them from there, so raising
a floor needs no second edit, and an environment built from an older lock file fails here
instead of serving with a known hole.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
PINNED = ("aiohttp", "cryptography", "pynacl")


def _floors() -> dict[str, Version]:
    doc = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    floors: dict[str, Version] = {}
    for line in doc["project"]["dependencies"]:
        req = Requirement(line)
        for spec in req.specifier:
            if spec.operator == ">=":
                floors[req.name.lower()] = Version(spec.version)
    return floors


def test_every_pinned_dependency_has_a_security_floor() -> None:
    floors = _floors()
    assert set(PINNED) <= set(floors)
    # Floors at or above the security releases named in pyproject.toml's comments.
    assert floors["aiohttp"] >= Version("3.14.3")
    assert floors["cryptography"] >= Version("50.0.0")
    assert floors["pynacl"] >= Version("1.6.2")


@pytest.mark.parametrize("name", PINNED)
def test_installed_dependency_below_its_security_floor_is_refused(name: str) -> None:
    floor = _floors()[name]
    installed = Version(version(name))
    assert installed >= floor, f"{name} {installed} is below its security floor {floor}"
