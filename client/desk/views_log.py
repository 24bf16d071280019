"""Roster and channels, Log health, Audit and Evidence."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from aiohttp import web

from client.api import bundle_kind, verify_evidence_bytes, verify_misbehaviour_bytes
from client.desk import views_acts
from client.desk.app import DESK_KEY, Desk, fragment, page
from client.errors import ClientError, UsageError
from protocol.encoding import b64e
from protocol.errors import ProtocolError

log = logging.getLogger("docket.desk")

MAX_BUNDLE = 80 * 1024 * 1024


def add_routes(routes: web.RouteTableDef) -> None:
    routes.get("/roster")(roster)
    routes.get("/health")(health)
    routes.get("/audit")(audit)
    routes.get("/audit/progress")(audit_progress)
    routes.post("/audit")(audit_start)
    routes.get("/audit/report.json")(audit_json)
    routes.get("/evidence")(evidence)
    routes.post("/evidence/disclose")(disclose)
    routes.post("/evidence/verify")(verify)


async def roster(request: web.Request) -> web.Response:
    """Members with their device fingerprints (for reading aloud), delegations, channels."""
    desk = request.app[DESK_KEY]
    async with desk.lock:
        with contextlib.suppress(ClientError):
            await desk.client.sync()
        r = desk.client.roster
        genesis = desk.client.genesis()
        owned = views_acts.owned_devices(desk.client)
        log_size = desk.client.log.size
    granted = request.query.get("granted", "")
    return page(
        request,
        "roster.html",
        owned=owned,
        log_size=log_size,
        granted=int(granted) if granted.isdigit() else None,
        roster=r,
        genesis=genesis,
        members=sorted(r.members.values(), key=lambda m: (m.delegation or "", m.id)),
        view="roster",
    )


async def health(request: web.Request) -> web.Response:
    """The verified checkpoint, its quorum and age, and the witnesses."""
    desk = request.app[DESK_KEY]
    client = desk.client
    sync_error = None
    async with desk.lock:
        try:
            await client.sync()
        except ClientError as exc:
            sync_error = exc.message
        stored = client.state.checkpoint()
        trusted = client.state.trusted_checkpoint()
        view = client.freshness.current()
        policy = client.roster.policy
        witnesses = sorted(client.roster.witnesses())
    return page(
        request,
        "health.html",
        checkpoint=stored,
        trusted=trusted,
        quorum=view,
        policy=policy.describe(),
        witnesses=witnesses,
        sync_error=sync_error,
        log_size=client.log.size,
        now=time.time(),
        view="health",
    )


async def audit(request: web.Request) -> web.Response:
    return page(request, "audit.html", run=request.app[DESK_KEY].audit, view="audit")


async def audit_progress(request: web.Request) -> web.Response:
    return fragment(request, "audit_report.html", run=request.app[DESK_KEY].audit)


async def audit_start(request: web.Request) -> web.StreamResponse:
    """Start the audit in the background (one at a time); the page shows its progress."""
    desk = request.app[DESK_KEY]
    if not desk.audit.running:
        desk.audit.running = True
        desk.audit.report = None
        desk.audit.error = None
        desk.audit.done = desk.audit.total = 0
        task = asyncio.create_task(_run_audit(desk))
        desk.tasks.add(task)
        task.add_done_callback(desk.tasks.discard)
    raise web.HTTPSeeOther("/audit")


async def _run_audit(desk: Desk) -> None:
    def progress(done: int, total: int) -> None:
        desk.audit.done, desk.audit.total = done, total
        desk.hub.publish("audit")

    try:
        async with desk.lock:
            desk.audit.report = await desk.client.audit(workers=1, progress=progress)
    except (ClientError, ProtocolError) as exc:
        desk.audit.error = str(exc)
    except Exception as exc:  # a bug must show on the page, not leave it waiting
        log.exception("the desk's audit failed")
        desk.audit.error = f"internal error ({type(exc).__name__}); please report it"
    finally:
        desk.audit.running = False
        desk.hub.publish("audit")


async def audit_json(request: web.Request) -> web.Response:
    report = request.app[DESK_KEY].audit.report
    if report is None:
        raise UsageError("no audit has been run yet")
    return web.Response(
        text=json.dumps(report.to_json(), sort_keys=True, indent=1, ensure_ascii=False),
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="docket-audit.json"'},
    )


async def evidence(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    genesis = desk.client.genesis()
    return page(request, "evidence.html", report=None, mis=None, genesis=genesis, view="evidence")


async def disclose(request: web.Request) -> web.Response:
    """Build the evidence bundle for a draft addressed to us; a download."""
    desk = request.app[DESK_KEY]
    form = await request.post()
    index = str(form.get("index", ""))
    if not index.isdigit():
        raise UsageError("give the log index of a draft addressed to you")
    async with desk.lock:
        bundle = await desk.client.disclose(int(index))
    return web.Response(
        body=bundle.to_bytes(),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="evidence-{int(index)}.json"'},
    )


async def verify(request: web.Request) -> web.Response:
    """Verify an uploaded bundle against the pinned talks; show what it proves."""
    desk = request.app[DESK_KEY]
    form = await request.post()
    upload = form.get("bundle")
    if not isinstance(upload, web.FileField):
        raise UsageError("choose a bundle file to verify")
    data = upload.file.read(MAX_BUNDLE + 1)
    if len(data) > MAX_BUNDLE:
        raise UsageError("the bundle is too large")
    genesis = desk.client.genesis()
    talks = b64e(genesis.talks_id)
    report = mis = None
    if bundle_kind(data) == "misbehaviour":
        mis = verify_misbehaviour_bytes(data, talks)
    else:
        report = verify_evidence_bytes(data, talks)
    return page(request, "evidence.html", report=report, mis=mis, genesis=genesis, view="evidence")
