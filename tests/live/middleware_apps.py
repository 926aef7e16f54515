"""One channel served through the WSGI stacks people really run, for test_middleware.py.

Each module attribute is a WSGI app with the same routes: ``GET /events`` (the stream),
``POST /publish?data=D`` and ``GET /stats`` (JSON: subscribers and the channel's
counters, ``direct_writes`` among them: how many deliveries the publish loop wrote to a
socket itself).

``plain``           SSEMiddleware, nothing around it
``tagged``          a request-id middleware: it adds a header through its own start_response
``gzip_stream``     a correct streaming compressor: gzip, with a sync flush after each chunk
``body_wrapper``    a pass-through wrapper of the body iterable (as error reporters do)
``sentry``          sentry-sdk's own SentryWsgiMiddleware (no DSN: it sends nothing)
``flask_compress``  Flask with Flask-Compress told to compress text/event-stream
``flask_plain``     Flask and the wsgisse extension alone
``bottle_plain``    Bottle and the wsgisse plugin alone
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import bottle
import flask
import sentry_sdk
from flask_compress import Compress
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware

import wsgisse
from wsgisse.integrations.bottle import SSEPlugin
from wsgisse.integrations.flask import SSE

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

channel = wsgisse.Channel(history=1000)
HEARTBEAT = 0.5


def _stats() -> dict[str, Any]:
    return {"subscribers": channel.subscriber_count, "counters": channel.counters()}


def _control(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/publish":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        payload: Any = {"id": channel.publish(query.get("data", ["x"])[-1]).id}
    else:
        payload = _stats()
    body = json.dumps(payload).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


plain = wsgisse.SSEMiddleware(_control, channel, "/events", heartbeat=HEARTBEAT)


def _tagging(app: WSGIApplication) -> WSGIApplication:
    def tagged(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = uuid.uuid4().hex

        def with_id(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, ("X-Request-Id", request_id)], exc_info)

        return app(environ, with_id)

    return tagged


def _gzipping(app: WSGIApplication) -> WSGIApplication:
    """gzip each response for clients that accept it, flushing after every chunk."""

    def gzipped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if "gzip" not in environ.get("HTTP_ACCEPT_ENCODING", ""):
            return app(environ, start_response)

        def coded(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(name, value) for name, value in headers if name.lower() != "content-length"]
            return start_response(status, [*kept, ("Content-Encoding", "gzip")], exc_info)

        body = app(environ, coded)
        return _compressed(body)

    return gzipped


def _compressed(body: Iterable[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    try:
        for chunk in body:
            out = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
            if out:
                yield out
        yield compressor.flush()
    finally:
        close: Callable[[], None] | None = getattr(body, "close", None)
        if close is not None:
            close()


class _BodyWrapper:
    """Passes every chunk on unchanged, as an error reporter's wrapper does."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return _Passing(self.app(environ, start_response))


class _Passing:
    def __init__(self, body: Iterable[bytes]) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        yield from self.body

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


tagged = _tagging(plain)
gzip_stream = _gzipping(plain)
body_wrapper = _BodyWrapper(plain)

sentry_sdk.init(dsn=None, default_integrations=False)
sentry = SentryWsgiMiddleware(plain)


def _flask_app(name: str) -> flask.Flask:
    app = flask.Flask(name)
    app.config["WSGISSE_HEARTBEAT"] = HEARTBEAT

    @app.post("/publish")
    def publish() -> dict[str, Any]:
        return {"id": channel.publish(flask.request.args.get("data", "x")).id}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        return _stats()

    return app


flask_plain = _flask_app("plain")
SSE(flask_plain, channel=channel)

flask_compress = _flask_app("compressing")
flask_compress.config["COMPRESS_MIMETYPES"] = ["text/event-stream", "application/json"]
flask_compress.config["COMPRESS_STREAMS"] = True
flask_compress.config["COMPRESS_MIN_SIZE"] = 0
Compress(flask_compress)
SSE(flask_compress, channel=channel)

bottle_plain = bottle.Bottle()
bottle_plain.install(SSEPlugin(channel, heartbeat=HEARTBEAT))


@bottle_plain.post("/publish")
def _bottle_publish() -> dict[str, Any]:
    return {"id": channel.publish(bottle.request.query.get("data", "x")).id}


@bottle_plain.get("/stats")
def _bottle_stats() -> dict[str, Any]:
    return _stats()
