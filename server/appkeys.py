"""Typed keys for everything the application and its requests share."""

from __future__ import annotations

from aiohttp import web

from server.services.auth import AuthService, Caller
from server.services.blobs import BlobStore
from server.services.checkpoints import Checkpointer
from server.services.invitations import InvitationService
from server.services.log import LogService
from server.services.metrics import Metrics
from server.services.notifier import Notifier
from server.services.quota import Quotas
from server.services.ratelimit import RateLimiter
from server.services.receipts import ReceiptService
from server.services.relay import RelayService
from server.services.roster import RosterService
from server.services.sequencer import Sequencer
from server.services.state import LogState
from server.services.talks import TalksService
from server.services.witnessing import Witnessing
from server.settings import Settings
from server.storage.db import Store

SETTINGS = web.AppKey("settings", Settings)
STATE = web.AppKey("state", LogState)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
NOTIFIER = web.AppKey("notifier", Notifier)
DEVICE_LIMITER = web.AppKey("device_limiter", RateLimiter)
IP_LIMITER = web.AppKey("ip_limiter", RateLimiter)
QUOTAS = web.AppKey("quotas", Quotas)
SEQUENCER = web.AppKey("sequencer", Sequencer)
CHECKPOINTER = web.AppKey("checkpointer", Checkpointer)
BLOBS = web.AppKey("blobs", BlobStore)
AUTH = web.AppKey("auth", AuthService)
INVITATIONS = web.AppKey("invitations", InvitationService)
TALKS = web.AppKey("talks", TalksService)
ROSTER = web.AppKey("roster", RosterService)
RELAY = web.AppKey("relay", RelayService)
RECEIPTS = web.AppKey("receipts", ReceiptService)
LOG = web.AppKey("log", LogService)
WITNESSING = web.AppKey("witnessing", Witnessing)

REQUEST_ID = web.RequestKey("request_id", str)
CALLER = web.RequestKey("caller", Caller)
