"""Serve a WSGI app with uWSGI in gevent mode, for the live tests.

Usage: ``python tests/live/run_uwsgi.py --port PORT [--router] [--option=value ...] module:attr``

Replaces itself (``exec``) with the ``uwsgi`` program installed beside this Python
(``pip install uwsgi`` builds it, about a minute here), so that the test's pid is the
uWSGI master's::

    uwsgi --http-socket 127.0.0.1:PORT --gevent 1000 --gevent-monkey-patch \\
          --master --die-on-term --module module:attr --virtualenv PREFIX

``--router`` puts uWSGI's HTTP router process in front of the worker instead
(``--http``, with ``--http-keepalive --http-auto-chunked``). Any other option before
the app is passed on to uWSGI, written ``--option=value`` (``--harakiri=2``, say).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Greenlets per worker: each open stream is one.
GEVENT_CORES = 1000


def uwsgi_program() -> Path:
    """The ``uwsgi`` program of this Python's environment (it may not be installed)."""
    return Path(sys.executable).parent / "uwsgi"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--router", action="store_true")
    parser.add_argument("app", help="the WSGI app, as module:attr")
    args, passed_on = parser.parse_known_args()
    address = f"{args.host}:{args.port}"
    listen = (
        ["--http", address, "--http-keepalive", "--http-auto-chunked"]
        if args.router
        else ["--http-socket", address]
    )
    program = str(uwsgi_program())
    argv = [
        program,
        *listen,
        "--gevent",
        str(GEVENT_CORES),
        "--gevent-monkey-patch",
        "--master",
        "--die-on-term",
        "--need-app",
        "--disable-logging",
        "--virtualenv",
        sys.prefix,
        *passed_on,
        "--module",
        args.app,
    ]
    sys.stdout.flush()
    # The app is found through $PYTHONPATH, which the embedded Python reads as ours does.
    os.execv(program, argv)  # noqa: S606 - our own uwsgi, with arguments built above


if __name__ == "__main__":
    sys.exit(main())
