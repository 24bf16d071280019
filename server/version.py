"""The installed version of Docket, for ``--version``, logs and the build-info metric."""

from __future__ import annotations

import functools
from importlib import metadata

DISTRIBUTION = "docket"


@functools.cache
def version() -> str:
    """The version of the installed ``docket`` distribution (``0+unknown`` when the code
    runs from a source tree that was never installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
