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
import threading
from types import FrameType
from typing import Any

import waitress
from _runner import load_app, parse_args

import wsgisse

THREADS = 8


def _finish(server: Any) -> None:
    """End the streams with their farewells, then let waitress' loop run dry and return.

    Runs in a thread of its own: waitress' loop (the main thread) keeps running meanwhile,
    so that the farewells the streams' threads write reach the clients. Nothing is raised
    into the loop, which could land inside a channel's handler and close that channel.
    """
    wsgisse.shutdown(timeout=2.0)
    server.task_dispatcher.shutdown(timeout=2)
    server.trigger.pull_trigger(lambda: _close_when_flushed(server))


def _close_when_flushed(server: Any) -> None:
    # In the loop's thread: every channel closes once its output is sent, and the loop
    # ends when nothing is left in its map.
    for channel in list(server.active_channels.values()):
        channel.will_close = True
    server.close()


def main() -> int:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--threads", type=int, default=THREADS)
    options, rest = extra.parse_known_args()
    args = parse_args(__doc__.splitlines()[0], rest)
    app = load_app(args.app)
    server = waitress.create_server(
        app, host=args.host, port=args.port, threads=options.threads, ident="waitress"
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        # Once: a second signal must not interrupt the shutdown it started.
        for each in (signal.SIGTERM, signal.SIGINT):
            signal.signal(each, signal.SIG_IGN)
        threading.Thread(target=_finish, args=(server,), name="stop", daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    print(f"waitress serving {args.app} on http://{args.host}:{args.port}", flush=True)
    server.run()  # until _close_when_flushed has emptied the loop
    return 0


if __name__ == "__main__":
    sys.exit(main())
