"""Serve a WSGI app with gevent's WSGIServer WITHOUT monkey-patching anything.

Usage: ``python run_gevent_unpatched.py PORT module:attr``

``threading`` keeps making real OS threads here, so an app that publishes from one
exercises wsgisse's cross-thread wake-ups into the hub. SIGTERM stops the server.
"""

from __future__ import annotations

import importlib
import signal
import sys

import gevent
from gevent.pywsgi import WSGIServer


def main() -> int:
    port, app_ref = int(sys.argv[1]), sys.argv[2]
    module_name, _, attr = app_ref.partition(":")
    app = getattr(importlib.import_module(module_name), attr)
    server = WSGIServer(("127.0.0.1", port), app, log=None)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1.0)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
