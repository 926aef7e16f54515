"""Serve a WSGI app with gevent's ``pywsgi.WSGIServer``, for the live tests.

Usage: ``python tests/live/run_gevent.py --port PORT [--certfile C --keyfile K] module:attr``

The standard library is monkey-patched before anything else is imported, as a gevent
deployment does. SIGTERM and SIGINT stop the server: it stops accepting, gives open
requests a second to finish (event streams never do, so they are killed), and the
process exits with status 0.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse
import signal
import sys

import gevent
from _runner import load_app, parse_args
from gevent.pywsgi import WSGIServer

# An open request still running this long after SIGTERM is killed.
STOP_TIMEOUT = 1.0


def main() -> int:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--certfile")
    extra.add_argument("--keyfile")
    tls, rest = extra.parse_known_args()
    args = parse_args(__doc__.splitlines()[0], rest)
    app = load_app(args.app)
    ssl_args = {"certfile": tls.certfile, "keyfile": tls.keyfile} if tls.certfile else {}
    # log=None: no access log; errors still go to stderr (error_log's default).
    server = WSGIServer((args.host, args.port), app, log=None, **ssl_args)
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, server.stop, STOP_TIMEOUT)
    scheme = "https" if tls.certfile else "http"
    print(f"gevent pywsgi serving {args.app} on {scheme}://{args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
