"""gunicorn hooks: refuse workers that cannot hold streams, and end streams on shutdown.

Use it as (or from) your gunicorn configuration::

    gunicorn -k gevent -c python:wsgisse.integrations.gunicorn app:app

or, in your own ``gunicorn.conf.py``::

    from wsgisse.integrations.gunicorn import post_worker_init

What it does in each worker, once it has loaded the app:

* ``sync`` worker: refuses to boot, naming the fix. It serves one request at a time per
  process, so one event stream would pin the whole worker.
* ``gthread`` worker: caps the process' streams at ``threads - 1`` (each stream holds a
  thread; one is kept for ordinary requests). Past the cap, browsers are told to come
  back later (see :class:`wsgisse.SSEApp`).
* every worker: SIGTERM and SIGINT (gunicorn sends SIGTERM to old workers on reload,
  SIGHUP) first end every stream with a farewell and a jittered ``retry`` (see
  :func:`wsgisse.shutdown`), then run gunicorn's own handler. The worker exits as soon as
  its streams have closed, well before ``graceful_timeout``, and the clients resume on the
  other workers with their ``Last-Event-ID``.
"""

from __future__ import annotations

from typing import Any

from .._lifecycle import chain_shutdown_signals, set_stream_limit

__all__ = ["post_worker_init"]

_REFUSED = {"SyncWorker"}
_THREADED = {"ThreadWorker"}


def post_worker_init(worker: Any) -> None:
    """gunicorn's ``post_worker_init`` hook (see the module's docstring).

    Raises:
        RuntimeError: the worker is gunicorn's ``sync`` worker (gunicorn then reports
            that the worker failed to boot, and stops).
    """
    kind = type(worker).__name__
    if kind in _REFUSED:
        raise RuntimeError(
            "wsgisse: gunicorn's sync worker serves one request at a time, so one event "
            "stream pins a whole worker. Run gunicorn with -k gevent (pip install gevent; "
            "raise --worker-connections for many streams) or -k gthread --threads N."
        )
    if kind in _THREADED:
        threads = int(worker.cfg.threads)
        set_stream_limit(max(threads - 1, 1))
        if threads < 2:  # noqa: PLR2004 - one for streams, one for everything else
            worker.log.warning(
                "wsgisse: with --threads %s an event stream blocks every other request "
                "of this worker; use --threads 8 or more, or -k gevent",
                threads,
            )
    chain_shutdown_signals()
