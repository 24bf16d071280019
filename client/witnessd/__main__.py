"""``python -m client.witnessd init|serve``."""

from __future__ import annotations

import sys

from client.witnessd.cli import main

sys.exit(main())
