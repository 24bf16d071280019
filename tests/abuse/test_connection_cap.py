"""One address cannot hold more than ``max_conns_per_ip`` connections.

Idle connections from 127.0.0.1 fill its quota; the next one from that address gets
one ``503 unavailable`` problem and is closed, while another address (127.0.0.2, also
loopback) is served; when a connection closes the address gets its slot back.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from protocol.crypto import Rng
from tests.abuse.conftest import live
from tests.faults.counters import bump

CAP = 4
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _ask(port: int, source: str = "127.0.0.1") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(REQUEST)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


async def test_connections_beyond_the_per_address_cap_are_refused(tmp_path: Path, rng: Rng) -> None:
    async with live(tmp_path, rng, max_conns_per_ip=CAP) as h:
        port = int(h.base.rsplit(":", 1)[1])
        held = []
        try:
            for _ in range(CAP):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            await asyncio.sleep(0.2)  # all accepted by the server
            for _ in range(3):
                out = await asyncio.to_thread(_ask, port)
                bump("bad inputs tried")
                head, _, body = out.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 503 "), out[:300]
                assert json.loads(body)["code"] == "unavailable"
            # Another address is not affected.
            other = await asyncio.to_thread(_ask, port, "127.0.0.2")
            assert other.startswith(b"HTTP/1.1 200 "), other[:300]
            held.pop().close()
            await asyncio.sleep(0.2)
            again = await asyncio.to_thread(_ask, port)
            assert again.startswith(b"HTTP/1.1 200 "), again[:300]
        finally:
            for sock in held:
                sock.close()
