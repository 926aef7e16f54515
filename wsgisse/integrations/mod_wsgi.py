"""Apache mod_wsgi: cap streams below the daemon's threads, and end them on stop or reload.

Call :func:`setup` from your WSGI script file, before the app serves a request
(:class:`wsgisse.SSEApp` logs a warning naming it at its first stream under mod_wsgi
when it has not run)::

    from wsgisse.integrations.mod_wsgi import setup
    setup()

What it does in the daemon process (``WSGIDaemonProcess``):

* caps the process' streams at ``threads - 1``: each stream holds one of the daemon's
  threads for as long as it is open, and one is kept for ordinary requests. Past the
  cap, browsers are told to come back later (see :class:`wsgisse.SSEApp`), as under
  gunicorn's ``gthread`` worker.
* records ``processes``, so that a channel kept in memory warns at its first stream when
  several processes serve the app (its events would reach one process' clients only).
* subscribes to mod_wsgi's shutdown event (``mod_wsgi.subscribe_shutdown``), which a
  daemon process publishes when Apache stops or restarts gracefully and sends it
  SIGTERM: every stream ends with a farewell and a jittered ``retry`` (see
  :func:`wsgisse.shutdown`), so the request threads finish before mod_wsgi's
  ``shutdown-timeout`` and the browsers resume on the new processes. mod_wsgi ignores
  Python's own signal handlers (``WSGIRestrictSignal``), so this is the only way in.

In embedded mode (no ``WSGIDaemonProcess``) it warns: the streams would hold Apache's own
worker threads.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from .._lifecycle import adapt_to, set_stream_limit, set_worker_count, shutdown

__all__ = ["setup"]

log = logging.getLogger("wsgisse")

# mod_wsgi's own shutdown-timeout is 5 s: the farewells must be out well before.
_SHUTDOWN_TIMEOUT = 2.0

_done: list[bool] = []


def _stopping(event: str = "process_stopping", **details: Any) -> None:
    shutdown(timeout=_SHUTDOWN_TIMEOUT)


def setup() -> bool:
    """Fit this process' streams to mod_wsgi (see the module's docstring), once.

    Returns ``False`` outside mod_wsgi (the ``mod_wsgi`` module exists only inside it),
    and does nothing then.
    """
    module: Any = sys.modules.get("mod_wsgi")
    if module is None:
        try:
            # By name: the module exists only inside Apache, and has no types.
            module = importlib.import_module("mod_wsgi")
        except ImportError:
            return False
    if getattr(module, "process_group", None) is None:
        return False  # PyPI's mod_wsgi installer package, outside Apache
    if _done:
        return True
    _done.append(True)
    adapt_to("mod_wsgi")
    if not getattr(module, "process_group", ""):
        log.warning(
            "wsgisse: mod_wsgi runs this app in embedded mode, where each event stream "
            "holds one of Apache's own worker threads; use daemon mode "
            "(WSGIDaemonProcess app processes=1 threads=100, WSGIProcessGroup app)"
        )
    threads = int(getattr(module, "threads_per_process", 0) or 0)
    if threads:
        set_stream_limit(max(threads - 1, 1))
        if threads < 2:  # noqa: PLR2004 - one for streams, one for everything else
            log.warning(
                "wsgisse: with threads=%s an event stream blocks every other request of "
                "this mod_wsgi process; give WSGIDaemonProcess threads=100 or so",
                threads,
            )
    processes = int(getattr(module, "maximum_processes", 0) or 0)
    if processes:
        set_worker_count(processes)
    subscribe = getattr(module, "subscribe_shutdown", None)
    if callable(subscribe):
        subscribe(_stopping)
    return True
