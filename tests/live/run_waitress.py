"""Serve a WSGI app with waitress (one thread per request), for the live tests.

Usage: ``python tests/live/run_waitress.py --port PORT [--threads N] module:attr``

waitress runs each request in one of its ``--threads`` worker threads (8 here, as the
tests ask; waitress' own default is 4), so an open event stream holds a thread: a
request beyond the threads waits in waitress' queue until one frees. The app's writes
are handed to waitress' I/O thread, which sends them at once (``send_bytes``: 1 byte,
the default).

SIGTERM and SIGINT stop it: wsgisse ends its streams (each gets its farewell), then
waitress closes its sockets and the process exits with status 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

import waitress
from _runner import load_app, parse_args

import wsgisse

THREADS = 8


class _Stop(Exception):  # noqa: N818 - a signal, not an error
    """Raised in the main thread by SIGTERM, to leave waitress' loop."""


def _stop(signum: int, frame: FrameType | None) -> None:
    # Once: a second signal must not interrupt the shutdown it started.
    for each in (signal.SIGTERM, signal.SIGINT):
        signal.signal(each, signal.SIG_IGN)
    raise _Stop


def main() -> int:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--threads", type=int, default=THREADS)
    options, rest = extra.parse_known_args()
    args = parse_args(__doc__.splitlines()[0], rest)
    app = load_app(args.app)
    server = waitress.create_server(
        app, host=args.host, port=args.port, threads=options.threads, ident="waitress"
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    print(f"waitress serving {args.app} on http://{args.host}:{args.port}", flush=True)
    try:
        server.run()
    except _Stop:
        # The streams' threads write their farewells while waitress' loop is stopped:
        # run it a little longer so that those writes reach the clients.
        wsgisse.shutdown(timeout=2.0)
        server.task_dispatcher.shutdown(timeout=2)
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
