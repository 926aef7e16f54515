"""Serve a WSGI app with Werkzeug's development server, one thread per request.

Usage: ``python tests/live/run_werkzeug.py --port PORT module:attr``

SIGTERM stops it like Ctrl-C does: the server closes its socket and the process exits
with status 0; request threads are daemon threads, so an open event stream does not
keep the process alive.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from _runner import load_app, parse_args
from werkzeug.serving import run_simple


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # run_simple's serve_forever() treats KeyboardInterrupt as a clean stop.
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    app = load_app(args.app)
    signal.signal(signal.SIGTERM, _interrupt)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
