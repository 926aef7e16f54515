"""Serve a WSGI app with gevent's ``pywsgi.WSGIServer``, for the live tests.

Usage: ``python tests/live/run_gevent.py --port PORT [--certfile C --keyfile K]
[--graceful] module:attr``

The standard library is monkey-patched before anything else is imported, as a gevent
deployment does. SIGTERM and SIGINT stop the server: it stops accepting, gives open
requests a second to finish (event streams never do, so they are killed), and the
process exits with status 0. With ``--graceful``, the signal first ends every event
stream on purpose (``wsgisse.shutdown()``: each gets its farewell), then stops the
server, as the deployment docs recommend.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse
import signal
import sys
from collections.abc import Callable

import gevent
from _runner import load_app, parse_args
from gevent.pywsgi import WSGIServer

import wsgisse

# An open request still running this long after SIGTERM is killed.
STOP_TIMEOUT = 1.0


def _stop(server: WSGIServer) -> Callable[[], None]:
    def stop() -> None:
        server.stop(STOP_TIMEOUT)

    return stop


def _graceful_stop(server: WSGIServer) -> Callable[[], None]:
    def stop() -> None:
        wsgisse.shutdown()
        server.stop(STOP_TIMEOUT)

    def spawn() -> None:
        # A signal handler runs in the hub, which must not wait: shutdown() waits for
        # the streams to write their farewells, so it runs in a greenlet of its own.
        gevent.spawn(stop)

    return spawn


def main() -> int:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--certfile")
    extra.add_argument("--keyfile")
    extra.add_argument("--graceful", action="store_true")
    options, rest = extra.parse_known_args()
    args = parse_args(__doc__.splitlines()[0], rest)
    app = load_app(args.app)
    ssl_args = (
        {"certfile": options.certfile, "keyfile": options.keyfile} if options.certfile else {}
    )
    # log=None: no access log; errors still go to stderr (error_log's default).
    server = WSGIServer((args.host, args.port), app, log=None, **ssl_args)
    stop = _graceful_stop(server) if options.graceful else _stop(server)
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop)
    scheme = "https" if options.certfile else "http"
    print(f"gevent pywsgi serving {args.app} on {scheme}://{args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
