"""Inbox, Draft (text, save, lineage, redline, receipts) and Compose."""

from __future__ import annotations

import contextlib
import mimetypes

from aiohttp import web

from client import redline
from client.cli.files import safe_file_name
from client.desk import render, views_acts
from client.desk.app import DESK_KEY, page
from client.errors import ClientError, UsageError
from protocol.envelope import MAX_FILE_NAME, Payload
from protocol.errors import ProtocolError


def add_routes(routes: web.RouteTableDef) -> None:
    routes.get("/")(inbox)
    routes.get("/draft/{index:\\d+}")(draft)
    routes.get("/draft/{index:\\d+}/save/{name}")(save)
    routes.get("/compose")(compose)
    routes.post("/compose")(send)


def _index(request: web.Request) -> int:
    return int(request.match_info["index"])


async def inbox(request: web.Request) -> web.Response:
    """New and unread drafts per channel, each with its verified badge."""
    desk = request.app[DESK_KEY]
    client = desk.client
    async with desk.lock:
        result = await client.inbox()
        by_channel: dict[str, list[dict[str, object]]] = {}
        for item in sorted(result.items, key=lambda i: -i.index):
            facts = render.checks(client, item.index)
            by_channel.setdefault(item.channel, []).append(
                {"item": item, "checks": facts, "verified": all(c.ok for c in facts)}
            )
    return page(
        request,
        "inbox.html",
        channels=by_channel,
        rejected=result.rejected,
        undelivered=result.undelivered,
        view="inbox",
    )


async def draft(request: web.Request) -> web.Response:
    """One draft: text or file, log position, lineage, redline, receipts."""
    desk = request.app[DESK_KEY]
    client = desk.client
    index = _index(request)
    async with desk.lock:
        await client.sync()
        got = await client.read(index)
        history = await client.history(got.header.draft)
        graph = render.lineage(client, index)
        receipts = client.receipts(index)
        facts = render.checks(client, index)
        agreement = views_acts.agreement(client, index)
        against = request.query.get("against")
        diff = None
        diff_error = None
        other = None
        if against and against.isdigit() and int(against) != index:
            other = await client.read(int(against))
            old, new = other.payload.body, got.payload.body
            if old is None or new is None:
                diff_error = "a redline compares two text versions; one of these is a file"
            else:
                try:
                    diff = (
                        redline.words(old, new) if int(against) < index else redline.words(new, old)
                    )
                except redline.TooLongError as exc:
                    diff_error = str(exc)
    p = got.payload
    names = {
        "file": safe_file_name(p.file_name) if p.file_data is not None else None,
        "text": safe_file_name(f"{p.title or 'draft'}-{index}.txt") if p.body is not None else None,
    }
    return page(
        request,
        "draft.html",
        d=got,
        history=history,
        graph=graph,
        receipts=receipts,
        checks=facts,
        diff=diff,
        diff_error=diff_error,
        other=other,
        names=names,
        agreement=agreement,
        view="inbox",
    )


async def save(request: web.Request) -> web.StreamResponse:
    """Save the draft's file or text: a download under the sanitised name.  The name in
    the URL must be exactly that name, so a crafted one (``../..``) is refused."""
    desk = request.app[DESK_KEY]
    index = _index(request)
    name = request.match_info["name"]
    async with desk.lock:
        got = await desk.client.read(index, offline=True)
    p = got.payload
    choices: dict[str, tuple[bytes, str]] = {}
    if p.file_data is not None:
        choices[safe_file_name(p.file_name)] = (p.file_data, "application/octet-stream")
    if p.body is not None:
        text_name = safe_file_name(f"{p.title or 'draft'}-{index}.txt")
        choices[text_name] = (p.body.encode("utf-8"), "text/plain; charset=utf-8")
    if name != safe_file_name(name) or name not in choices:
        raise UsageError(f"no file of that name to save (refused: {name[:80]!r})")
    data, media = choices[name]
    return web.Response(
        body=data,
        headers={
            "Content-Type": media,
            "Content-Disposition": _disposition(name),
            "Cache-Control": "no-store",
        },
    )


def _disposition(name: str) -> str:
    from urllib.parse import quote

    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


async def compose(request: web.Request) -> web.Response:
    """The form: a channel, text or a file, and optionally the version it follows."""
    desk = request.app[DESK_KEY]
    client = desk.client
    async with desk.lock:
        with contextlib.suppress(ClientError):
            await client.sync()  # so open calls and the roster are current
        me = client.member_id()
        roster = client.roster
        channels = [
            c for c in roster.channels.values() if me and roster.is_channel_member(c.id, me)
        ]
        parent = request.query.get("parent")
        parent_draft = None
        if parent and parent.isdigit():
            parent_draft = await client.read(int(parent))
        calls = views_acts.open_calls(client)
        mediator = views_acts.mediator_calls(client)
    return page(
        request,
        "compose.html",
        channels=channels,
        parent=parent_draft,
        sent=request.query.get("sent"),
        calls=calls,
        mediator=mediator,
        view="compose",
    )


async def send(request: web.Request) -> web.StreamResponse:
    """Send what the form holds; refused while an alarm is raised."""
    desk = request.app[DESK_KEY]
    if desk.blocked():
        raise UsageError("sending is blocked while an alarm is raised (see the banner)")
    form = await request.post()
    channel = str(form.get("channel", ""))
    title = str(form.get("title", "")).strip()
    text = str(form.get("text", ""))
    upload = form.get("file")
    parent = str(form.get("parent", ""))
    non_paper = str(form.get("non_paper", "")) == "1"
    try:
        if isinstance(upload, web.FileField) and upload.filename:
            data = upload.file.read()
            name = upload.filename[:MAX_FILE_NAME]
            media = mimetypes.guess_type(name)[0] or "application/octet-stream"
            payload = Payload(title=title or name, file_name=name, media_type=media, file_data=data)
        elif text.strip():
            first = (text.strip().splitlines() or [""])[0][:80]
            payload = Payload(title=title or first, body=text.replace("\r\n", "\n"))
        else:
            raise UsageError("give a text or a file to send")
    except ProtocolError as exc:
        raise UsageError(f"cannot send this: {exc.detail}") from exc
    client = desk.client
    async with desk.lock:
        parents: list[bytes] = []
        if parent.isdigit():
            parents = [client.log.draft(int(parent)).leaf]
        sent = await client.send(channel, payload, parents=parents, non_paper=non_paper)
    desk.hub.publish("log")
    raise web.HTTPSeeOther(f"/draft/{sent.index}")
