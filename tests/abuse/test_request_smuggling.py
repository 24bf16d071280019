"""Request smuggling: ambiguous HTTP/1.1 framing is refused by both aiohttp parsers.

Each probe is sent over a raw socket to a real ``docket-server serve`` process, once
with aiohttp's C parser (llhttp, the default) and once with the pure-Python parser
(``AIOHTTP_NO_EXTENSIONS=1``).  Every probe carries a second, smuggled request after
the ambiguous part.  What aiohttp 3.14 does, and what is asserted exactly:

* the answer is ``HTTP/1.0 400 Bad Request`` (``text/plain``: the parser refuses the
  request before it reaches the application, so not problem+json) -- also for an
  oversized header line (8190 bytes) and too many headers, where aiohttp answers 400,
  not 431;
* exactly one response: the smuggled request is never answered;
* the server closes the connection after it.

The probes: Content-Length with Transfer-Encoding, two Content-Lengths, an obs-fold
continuation line, a bare CR inside a header, a LF in a chunk extension, a
Transfer-Encoding list ending in something other than chunked, an oversized header
and too many headers.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.datadir import init_data_dir
from tests.faults.counters import bump
from tests.faults.procs import REPO, server_env, serving
from tests.server.harness import ORIGIN

SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
PROBES: dict[str, bytes] = {
    "content_length_with_transfer_encoding": b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "two_content_lengths": b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 5\r\nContent-Length: 39\r\n\r\nhello" + SMUGGLED,
    "obs_fold": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Foo: a\r\n  Transfer-Encoding: chunked\r\n"
    b"\r\n" + SMUGGLED,
    "bare_cr_in_a_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    b"X-Foo: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "lf_in_a_chunk_extension": b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2;a=\nb\r\nxx\r\n0\r\n\r\n" + SMUGGLED,
    "transfer_encoding_not_ending_in_chunked": b"POST /v1/auth/challenge HTTP/1.1\r\n"
    b"Host: x\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "oversized_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
    + b"a" * 20_000
    + b"\r\n\r\n"
    + SMUGGLED,
    "too_many_headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    + b"\r\n"
    + SMUGGLED,
}
PARSERS = {"c": {}, "python": {"AIOHTTP_NO_EXTENSIONS": "1"}}


def _parser_in_use(env: dict[str, str]) -> str:
    """Which request parser a server process with ``env`` gets."""
    code = (
        "import aiohttp.http_parser as p;"
        "print('python' if p.HttpRequestParser is p.HttpRequestParserPy else 'c')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=server_env(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


def _exchange(host: str, port: int, data: bytes) -> tuple[bytes, bool]:
    """Send ``data``; everything the server answers, and whether it closed the socket."""
    with socket.create_connection((host, port), timeout=5) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may close before it read everything: still a refusal
        out = b""
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            return out, False
        except ConnectionResetError:
            pass  # closed with unread bytes (RST): closed all the same
        return out, True


@pytest.mark.parametrize("parser", sorted(PARSERS))
async def test_request_smuggling_probes_are_refused(tmp_path: Path, parser: str) -> None:
    env = PARSERS[parser]
    assert _parser_in_use(env) == parser
    data = tmp_path / "data"
    init_data_dir(data, ORIGIN)
    async with serving(data, env=env) as served:
        host, port = served.host_port
        for name, probe in PROBES.items():
            out, closed = await asyncio.to_thread(_exchange, host, port, probe)
            bump("bad inputs tried")
            head, _, body = out.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 400 Bad Request\r\n"), (name, out[:300])
            assert b"Content-Type: text/plain" in head, (name, head)
            assert out.count(b"HTTP/1.") == 1, (name, out)  # no second response
            assert closed, name
        # And the server still answers honest requests.
        out, _ = await asyncio.to_thread(
            _exchange, host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert out.startswith(b"HTTP/1.1 200 OK\r\n"), out[:300]
        assert await served.stop() == 0
