"""Thin HTTP handlers: parse the request, call one service, serialise the answer."""
