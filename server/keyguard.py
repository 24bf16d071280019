"""Notice a checkpoint key removed or changed while the server runs, before signing.

The key is read once at start-up; the server signs promises and checkpoints with the
copy in memory.  If the operator (or an intruder, or a botched restore) removes or
replaces ``DATA/checkpoint.key`` meanwhile, the next start would fail or sign with
another key, and every checkpoint signed in between would be by a key the directory no
longer holds.  So before each signature the server looks: a ``stat`` of the file
(cheap enough for every append), and a re-read only when the ``stat`` changed.  A key
that is gone or differs makes the server read-only with a message saying which
(:meth:`~server.services.state.LogState.check_key`); a file merely touched or rewritten
with the same key changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from protocol import crypto
from protocol.encoding import b64d
from protocol.errors import ProtocolError


class KeyGuard:
    """``guard()`` -> ``None`` while the key file holds the key in memory, else why not."""

    def __init__(self, path: Path, key: crypto.SigningKey) -> None:
        self._path = path
        self._seed = key.seed_bytes()
        self._stat = self._signature()

    def _signature(self) -> tuple[int, int, int, int]:
        st = os.stat(self._path)
        return st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode

    def __call__(self) -> str | None:
        try:
            stat = self._signature()
        except FileNotFoundError:
            return (
                f"the checkpoint key {self._path} was removed while the server ran; "
                "nothing more is signed until it is restored and the server restarted"
            )
        except OSError as exc:
            return f"the checkpoint key {self._path} cannot be read: {exc.strerror}"
        if stat == self._stat:
            return None
        try:
            seed = b64d(self._path.read_text().strip(), length=32, what="key")
        except (OSError, UnicodeDecodeError, ProtocolError):
            seed = b""
        if not crypto.equal(seed, self._seed):
            return (
                f"the checkpoint key {self._path} was changed while the server ran: it is "
                "not the key this log is signed with; nothing more is signed"
            )
        self._stat = stat  # touched, or rewritten with the same key
        return None
