"""Apps for the tests of other servers and middleware (``tests/test_compat.py``) and of
the connection cap in a browser (``tests/test_capacity_browser.py``).

Each app has its own channel and answers these routes besides its stream:

``POST /publish?data=D&count=N``
    Publishes N events (data ``D``, or ``0``..``N-1``); answers JSON ``{"ids": [...]}``.
``GET /stats``
    JSON ``{"pid": ..., "subscribers": ...}``.

The apps:

``flask_plain`` and ``flask_compressing``
    A Flask app with ``wsgisse.integrations.flask.SSE`` at ``/events`` and Flask-Compress:
    with its defaults, and told to compress ``text/event-stream`` as well
    (``COMPRESS_MIMETYPES``; ``COMPRESS_STREAMS`` is on by default). ``GET /page`` is a
    compressible HTML page.
``gzip_around_stream``
    ``tests/live/core_app.py`` wrapped whole in Paste's gzip middleware.
``gzip_beside_stream``
    The way to combine them: the gzip middleware wraps the site, wsgisse wraps both.
``capped``
    ``GET /`` a page; ``GET /events``: a channel served by :class:`wsgisse.SSEApp` with
    ``max_connections=2`` and ``capacity_retry=1000``; ``GET /refused``: a ``503`` with
    ``Retry-After``, as a cap that does not know about ``EventSource`` would answer.

The heartbeat is ``$WSGISSE_HEARTBEAT`` seconds (0.2 by default), so that a gone client
is noticed quickly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from flask import Flask, request
from flask_compress import Compress
from paste.gzipper import middleware as gzip_middleware

import wsgisse
from wsgisse.integrations.flask import SSE

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HEARTBEAT = float(os.environ.get("WSGISSE_HEARTBEAT", "0.2"))

PAGE = (
    b'<!doctype html>\n<html><head><meta charset="utf-8"><title>wsgisse compat</title></head>\n'
    b"<body><p>" + b"A page worth compressing. " * 100 + b"</p></body></html>\n"
)


def _json(start_response: StartResponse, payload: object, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _site(channel: wsgisse.Channel) -> WSGIApplication:
    """The routes every plain WSGI app here shares: a page, publish and stats."""

    def site(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == "/publish" and environ["REQUEST_METHOD"] == "POST":
            data = query.get("data")
            count = int(query.get("count", "1"))
            ids = [channel.publish(str(n) if data is None else data).id for n in range(count)]
            return _json(start_response, {"ids": ids})
        if path == "/stats":
            return _json(
                start_response, {"pid": os.getpid(), "subscribers": channel.subscriber_count}
            )
        if path in ("/", "/page"):
            start_response(
                "200 OK",
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE)))],
            )
            return [PAGE]
        return _json(start_response, {"error": "not found"}, "404 Not Found")

    return site


# -- Flask and Flask-Compress --------------------------------------------------------------


def _flask_app(*, compress_event_streams: bool) -> Flask:
    app = Flask(__name__)
    app.config["WSGISSE_HEARTBEAT"] = HEARTBEAT
    if compress_event_streams:
        app.config["COMPRESS_MIMETYPES"] = ["text/html", "text/event-stream"]
        app.config["COMPRESS_STREAMS"] = True
    sse = SSE(app)
    Compress(app)

    @app.post("/publish")
    def publish() -> dict[str, list[str | None]]:
        count = int(request.args.get("count", "1"))
        data = request.args.get("data")
        return {"ids": [sse.publish(str(n) if data is None else data).id for n in range(count)]}

    @app.get("/stats")
    def stats() -> dict[str, int]:
        return {"pid": os.getpid(), "subscribers": sse.channel.subscriber_count}

    @app.get("/page")
    def page() -> bytes:
        return PAGE

    return app


flask_plain = _flask_app(compress_event_streams=False)
flask_compressing = _flask_app(compress_event_streams=True)


# -- a generic gzip middleware (Paste's) ---------------------------------------------------

_gzip_channel = wsgisse.Channel(history=1000)
gzip_around_stream = gzip_middleware(
    wsgisse.SSEMiddleware(_site(_gzip_channel), _gzip_channel, "/events", heartbeat=HEARTBEAT)
)
_beside_channel = wsgisse.Channel(history=1000)
gzip_beside_stream = wsgisse.SSEMiddleware(
    gzip_middleware(_site(_beside_channel)), _beside_channel, "/events", heartbeat=HEARTBEAT
)


# -- the connection cap --------------------------------------------------------------------

MAX_CONNECTIONS = 2
CAPACITY_RETRY = 1000

_capped_channel = wsgisse.Channel(history=1000)
_capped_endpoint = wsgisse.SSEApp(
    _capped_channel,
    heartbeat=HEARTBEAT,
    max_connections=MAX_CONNECTIONS,
    capacity_retry=CAPACITY_RETRY,
)
_capped_site = _site(_capped_channel)


def _refused(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    del environ
    body = b"too many event streams\n"
    start_response(
        "503 Service Unavailable",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("Retry-After", "1"),
        ],
    )
    return [body]


_CAPPED_ROUTES: dict[str, Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]] = {
    "/events": _capped_endpoint,
    "/refused": _refused,
}


def capped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The ``capped`` app described above."""
    route = _CAPPED_ROUTES.get(environ.get("PATH_INFO", ""), _capped_site)
    return route(environ, start_response)
