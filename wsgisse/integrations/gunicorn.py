"""gunicorn hooks: refuse workers that cannot hold streams, and end streams on shutdown.

Use it as (or from) your gunicorn configuration::

    gunicorn -k gevent -c python:wsgisse.integrations.gunicorn app:app

or, in your own ``gunicorn.conf.py``::

    from wsgisse.integrations.gunicorn import post_worker_init

What it does in each worker, once it has loaded the app:

* ``sync`` worker: refuses to boot, naming the fix. It serves one request at a time per
  process, so one event stream would pin the whole worker.
* ``eventlet`` worker (gunicorn before 26; eventlet is deprecated upstream): refuses to
  boot, naming ``-k gevent``. wsgisse is made for gevent's hub and for native threads;
  under eventlet's (gunicorn 23, eventlet 0.41) streams flowed, but every stop ended in
  a crash of the worker (``Cannot switch to MAINLOOP from MAINLOOP``, exit 255).
* several workers (``-w 2`` and up): warns at start-up when the Redis backend is not even
  imported, and, exactly, in each worker at the first stream of a channel kept in
  memory (:class:`wsgisse.MemoryBackend`): its events reach only that worker's clients.
  Name ``RedisBackend`` (``wsgisse.backends.redis``) as the channel's backend.
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

import sys
from typing import Any

from .._lifecycle import chain_shutdown_signals, set_stream_limit, set_worker_count

__all__ = ["post_worker_init", "refusal"]

_REFUSED = {"SyncWorker"}
_GREEN_ELSEWHERE = {"EventletWorker"}
_THREADED = {"ThreadWorker"}

_SYNC_REFUSAL = (
    "wsgisse: gunicorn's sync worker serves one request at a time, so one event "
    "stream pins a whole worker. Run gunicorn with -k gevent (pip install gevent; "
    "raise --worker-connections for many streams) or -k gthread --threads N."
)
_EVENTLET_REFUSAL = (
    "wsgisse: gunicorn's eventlet worker is not supported (eventlet is deprecated "
    "upstream and gunicorn 26 removed the worker; under it a worker with streams crashes "
    "when it stops). Run gunicorn with -k gevent (pip install gevent), or -k gthread "
    "--threads N."
)


def refusal(worker_class: str, class_name: str) -> str | None:
    """Why a gunicorn worker cannot serve wsgisse's streams, or ``None`` if it can.

    ``worker_class`` is the worker class as configured (``cfg.worker_class_str``, say
    ``"eventlet"`` or ``"gunicorn.workers.geventlet.EventletWorker"``), ``class_name``
    the name of the worker's class.
    """
    if class_name in _REFUSED or worker_class in ("sync", "gunicorn.workers.sync.SyncWorker"):
        return _SYNC_REFUSAL
    if class_name in _GREEN_ELSEWHERE or "eventlet" in worker_class.lower():
        return _EVENTLET_REFUSAL
    return None


def post_worker_init(worker: Any) -> None:
    """gunicorn's ``post_worker_init`` hook (see the module's docstring).

    Raises:
        RuntimeError: the worker is gunicorn's ``sync`` or ``eventlet`` worker (gunicorn
            then reports that the worker failed to boot, and stops).
    """
    kind = type(worker).__name__
    reason = refusal(str(getattr(worker.cfg, "worker_class_str", "")), kind)
    if reason is not None:
        raise RuntimeError(reason)
    workers = int(worker.cfg.workers)
    set_worker_count(workers)
    if workers > 1 and "wsgisse.backends.redis" not in sys.modules:
        worker.log.warning(
            "wsgisse: %s workers serve this app and wsgisse.backends.redis is not imported: "
            "a channel kept in memory (the default backend) reaches only the clients of the "
            "worker that published. Give your channels backend=RedisBackend(url) "
            "(from wsgisse.backends.redis), or run one worker (-w 1 -k gevent).",
            workers,
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
