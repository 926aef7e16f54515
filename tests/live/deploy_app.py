"""The app that tests/test_deploy.py puts behind nginx and Caddy: one Channel, plain WSGI.

Routes:

``GET /``
    An HTML page with no script of its own (the test drives it). It is padded past 1 KB
    so that a proxy that compresses pages (the recipes do, for everything but the
    stream) does compress it: the test reads that from the page's navigation timing, and
    so knows that compression was on and left the stream alone.
``GET /events``
    The channel's event stream; heartbeat ``$WSGISSE_HEARTBEAT`` seconds (default 1:
    longer than the one-second delivery bound the tests assert, so a heartbeat cannot
    flush an event out of a buffering proxy in time and hide it; short enough that a
    stream whose client left is noticed quickly when the servers stop).
``POST /publish?data=D``
    Publishes ``D`` (default ``x``: a 1-byte event) and answers ``{"id": ...}``.
``GET /stats``
    ``{"subscribers": N}``: how many streams reached the app.

``$WSGISSE_PER_CLIENT`` and ``$WSGISSE_TRUSTED_PROXIES`` set the endpoint's
``max_connections_per_client`` and ``trusted_proxies`` (default: none).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import wsgisse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

channel = wsgisse.Channel(history=100)

_FILLER = "".join(f"<p hidden>line {n} of filler that compresses well</p>\n" for n in range(40))
PAGE = f"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>wsgisse deploy test</title></head>
<body>
<h1>wsgisse deploy test</h1>
{_FILLER}</body>
</html>
""".encode()


def _respond(
    start_response: StartResponse, body: bytes, content_type: str, status: str = "200 OK"
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]


def _json(start_response: StartResponse, payload: object, status: str = "200 OK") -> list[bytes]:
    return _respond(start_response, json.dumps(payload).encode(), "application/json", status)


def _app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    method = environ["REQUEST_METHOD"]
    if path == "/" and method == "GET":
        return _respond(start_response, PAGE, "text/html; charset=utf-8")
    if path == "/publish" and method == "POST":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        data = query.get("data", ["x"])[-1]
        return _json(start_response, {"id": channel.publish(data).id})
    if path == "/stats":
        return _json(start_response, {"subscribers": channel.subscriber_count})
    return _json(start_response, {"error": "not found"}, "404 Not Found")


app = wsgisse.SSEMiddleware(
    _app,
    channel,
    "/events",
    heartbeat=float(os.environ.get("WSGISSE_HEARTBEAT", "1")),
    # The per-client cap and the proxies believed (tests/test_proxy_clients.py).
    max_connections_per_client=int(os.environ.get("WSGISSE_PER_CLIENT", "0")) or None,
    trusted_proxies=os.environ.get("WSGISSE_TRUSTED_PROXIES") or None,
)
