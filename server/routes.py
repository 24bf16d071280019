"""The whole URL map (docs/API.md is the contract)."""

from __future__ import annotations

from aiohttp import web

from server.handlers import acts, auth, drafts, inbox, invitations, log, ops, roster, talks

INDEX = r"{index:\d{1,16}}"
INVITATION = r"{id:[A-Za-z0-9_-]{1,64}}"


def setup_routes(app: web.Application) -> None:
    """Register every route."""
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_get("/v1/talks", talks.get_talks)
    app.router.add_post("/v1/talks", talks.post_talks)
    app.router.add_post("/v1/auth/challenge", auth.post_challenge)
    app.router.add_post("/v1/auth/token", auth.post_token)
    app.router.add_post("/v1/auth/logout", auth.post_logout)
    app.router.add_post("/v1/auth/rotate", auth.post_rotate)
    app.router.add_post("/v1/invitations", invitations.post_invitation)
    app.router.add_get("/v1/invitations", invitations.get_invitations)
    app.router.add_post(f"/v1/invitations/{INVITATION}/accept", invitations.post_accept)
    app.router.add_post("/v1/roster", roster.post_roster)
    app.router.add_post("/v1/acts", acts.post_act)
    app.router.add_post("/v1/drafts", drafts.post_draft)
    app.router.add_get(f"/v1/drafts/{INDEX}", drafts.get_draft)
    app.router.add_get(f"/v1/drafts/{INDEX}/ciphertext", drafts.get_ciphertext)
    app.router.add_get(f"/v1/drafts/{INDEX}/receipts", drafts.get_receipts)
    app.router.add_post("/v1/receipts", drafts.post_receipts)
    app.router.add_get("/v1/inbox", inbox.get_inbox)
    app.router.add_get("/v1/ws", inbox.get_ws)
    app.router.add_get("/v1/log/checkpoint", log.get_checkpoint)
    app.router.add_get("/v1/log/entries", log.get_entries)
    app.router.add_get("/v1/log/proof/inclusion", log.get_inclusion)
    app.router.add_get("/v1/log/proof/consistency", log.get_consistency)
    app.router.add_post("/v1/log/cosignatures", log.post_cosignature)
