"""The server this home talks to: ``server show`` and ``server set-url`` (when the host
moves), and the ``--ca`` option of the commands that create a home (client.tls)."""

from __future__ import annotations

import argparse
from pathlib import Path

from client import tls
from client.cli.context import Context
from client.cli.parsing import Commands
from client.errors import NetworkError, VerificationError
from client.state import LocalState
from client.transport import Transport
from protocol import crypto
from protocol.encoding import JSONValue, b64e
from protocol.errors import ProtocolError
from protocol.genesis import Genesis


def register(commands: Commands) -> None:
    """Add ``server show`` and ``server set-url``."""
    group = commands.group("server", "the server URL this home talks to, and its TLS trust")
    group.add("show", cmd_show, "show the stored server URL and the certificates trusted for it")
    p = group.add(
        "set-url",
        cmd_set_url,
        "change the stored server URL, after checking it serves the pinned talks",
    )
    p.add_argument("url", help="the new server URL (https://HOST:PORT)")
    add_ca_option(p)


def add_ca_option(p: argparse.ArgumentParser) -> None:
    """``--ca FILE``: trust only these certificates for this home's server (stored)."""
    p.add_argument(
        "--ca",
        type=Path,
        metavar="FILE",
        help="PEM file of the private CA, or the server's own certificate to pin; "
        "copied into the home and used for every connection",
    )


def store_tls_choices(ctx: Context, args: argparse.Namespace) -> None:
    """After a home was created (or joined): keep ``--ca`` and an ``--insecure`` consent
    for the ``--server`` URL given with it."""
    ca = getattr(args, "ca", None)
    if ca is not None:
        tls.install_ca(ctx.home, ca)
    if ctx.insecure and ctx.server and tls.is_cleartext_remote(ctx.server):
        state = LocalState(ctx.home)
        try:
            state.set("insecure_url", ctx.server.rstrip("/"))
        finally:
            state.close()


def check_new_home_options(ctx: Context, args: argparse.Namespace) -> None:
    """Refuse a bad ``--ca`` or a cleartext URL before any key store is created."""
    ca = getattr(args, "ca", None)
    if ca is not None:
        tls.check_ca_file(ca)
    if ctx.server:
        tls.check_url(ctx.server, insecure=ctx.insecure)


async def cmd_show(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket server show``."""
    state = LocalState(ctx.home)
    try:
        url = state.server
        insecure = state.get("insecure_url")
    finally:
        state.close()
    ca = tls.home_ca(ctx.home)
    ctx.say(f"server: {url or '-'}")
    ctx.say(f"trust:  {ca if ca else 'the system trust store'}")
    if insecure and insecure == url:
        ctx.say("cleartext http:// accepted with --insecure")
    accepted = bool(insecure and insecure == url)
    return {"ca": str(ca) if ca else None, "insecure": accepted, "server": url}


async def cmd_set_url(ctx: Context, args: argparse.Namespace) -> JSONValue:
    """``docket server set-url URL [--ca FILE]``: only a server that serves the pinned
    talks (same genesis, hence the same log key and origin) is stored."""
    url = str(args.url).rstrip("/")
    tls.check_url(url, insecure=ctx.insecure)
    if args.ca is not None:
        tls.check_ca_file(args.ca)
    ca = args.ca if args.ca is not None else tls.home_ca(ctx.home)
    state = LocalState(ctx.home)
    try:
        pinned = state.genesis()
        async with Transport(url, ssl_context=tls.client_context(ca)) as transport:
            answer = await transport.request("GET", "/v1/talks", auth=False)
        try:
            served = Genesis.from_json(answer.get("genesis") if isinstance(answer, dict) else None)
        except ProtocolError as exc:
            raise NetworkError(f"{url} did not send a valid genesis: {exc.detail}") from exc
        if pinned is not None and not (
            crypto.equal(served.talks_id, pinned.talks_id)
            and crypto.equal(served.log_key, pinned.log_key)
        ):
            raise VerificationError(
                f"{url} serves other talks (fingerprint {served.fingerprint}) than the "
                f"pinned ones ({pinned.fingerprint}): the URL was not changed",
                code="talks_mismatch",
            )
        state.set("server", url)
        state.set("insecure_url", url if ctx.insecure and tls.is_cleartext_remote(url) else "")
    finally:
        state.close()
    if args.ca is not None:
        tls.install_ca(ctx.home, args.ca)
    ctx.say(f"server URL set to {url}")
    if pinned is None:
        ctx.say("(this home has no talks pinned yet: nothing to check the new server against)")
    else:
        ctx.say(f"it serves the pinned talks {pinned.fingerprint}")
    return {"checked": pinned is not None, "server": url, "talks": b64e(served.talks_id)}
