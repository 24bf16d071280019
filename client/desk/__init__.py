"""Docket Desk: the local browser app (``docket desk``).

An aiohttp app run inside the client process on 127.0.0.1 over one
:class:`~client.api.DocketClient`: the browser shows pages rendered here and never
holds a key or talks to the Docket server.  :mod:`client.desk.guards` holds the local
app's guards (launch token and session cookie, Host and Origin, CSRF, CSP and no-store),
:mod:`client.desk.app` the app and its lock, :mod:`client.desk.live` the follower and
the server-sent events, ``views_*`` the pages.
"""
