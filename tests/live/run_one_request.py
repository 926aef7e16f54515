"""Serve a wsgisse app with a server that runs one request at a time, or its threaded twin.

Usage: ``python tests/live/run_one_request.py --port PORT KIND`` where KIND is

``wsgiref``
    ``wsgiref.simple_server.make_server(...).serve_forever()``: one request at a time.
``bottle``
    Bottle's default ``bottle.run(app)`` (wsgiref underneath), the plugin's stream route.
``werkzeug``
    Werkzeug's ``run_simple(..., threaded=False)``: one request at a time.
``wsgiref-threading``
    wsgiref's server with ``socketserver.ThreadingMixIn``: a thread per request, though
    its environ says ``wsgi.multithread`` False (the case that must not be refused).

Every kind serves ``GET /`` (``ok``), the stream at ``GET /events`` and
``POST /publish`` (publishes ``x``). SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import signal
import socketserver
import sys
from collections.abc import Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer, make_server

import wsgisse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

channel = wsgisse.Channel(history=10)


def _page(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/publish":
        channel.publish("x")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


def _bottle_app() -> Any:
    import bottle  # noqa: PLC0415 - only this kind needs it

    from wsgisse.integrations.bottle import SSEPlugin  # noqa: PLC0415

    app = bottle.Bottle()
    sse = app.install(SSEPlugin(channel, heartbeat=0.5))

    @app.get("/")
    def index() -> str:
        return "ok\n"

    @app.post("/publish")
    def publish() -> str:
        sse.publish("x")
        return "ok\n"

    return app


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("kind", choices=["wsgiref", "bottle", "werkzeug", "wsgiref-threading"])
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    app = wsgisse.SSEMiddleware(_page, channel, "/events", heartbeat=0.5)
    try:
        if args.kind == "bottle":
            import bottle  # noqa: PLC0415

            bottle.run(_bottle_app(), host=args.host, port=args.port, quiet=True)
        elif args.kind == "werkzeug":
            from werkzeug.serving import run_simple  # noqa: PLC0415

            run_simple(args.host, args.port, app, threaded=False, use_reloader=False)
        else:
            server_class = _ThreadingWSGIServer if args.kind == "wsgiref-threading" else WSGIServer
            with make_server(args.host, args.port, app, server_class) as server:
                server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
