"""A Flask app whose event stream is a Redis channel, for the multi-worker tests.

gunicorn serves it as ``tests.live.redis_app:app``; the Redis URL comes from the
environment variable ``WSGISSE_TEST_REDIS_URL``. Routes:

``/events``
    The channel ``news`` (the Flask extension's stream route), resumed from
    ``Last-Event-ID``, with a heartbeat every second. The response carries
    ``X-Worker-Pid``: the pid of the worker serving it, so that a test can tell which
    worker a client landed on.
``/pid``
    That pid, as text.
``/metrics``
    Every worker's stats (``RedisBackend.fleet_metrics``): one series per worker.
``/publish?n=N`` (``&key=K``: idempotently, with that key)
    Publishes ``{"n": N}`` from the worker, as a view would; answers
    ``{"id": ..., "ms": ...}``, or 503 with ``{"error": ..., "ms": ...}`` when the
    publish raised :class:`wsgisse.BackendUnavailableError`.

Run as a script, it is the publisher outside the web tier (a cron job, a task queue
worker)::

    python tests/live/redis_app.py REDIS_URL COUNT [--start N] [--interval SECONDS]

It publishes COUNT events whose data is ``{"n": N}`` (N counting from ``--start``), and
prints one JSON line per publish as it goes: ``{"n": N, "id": "...", "ms": ...}``, or
``{"n": N, "error": "BackendUnavailableError", "ms": ...}`` when the publish failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from flask import Flask, Response, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import wsgisse
from wsgisse.backends.redis import RedisBackend
from wsgisse.integrations.flask import SSE

CHANNEL = "news"
URL_VARIABLE = "WSGISSE_TEST_REDIS_URL"


def create_app(redis_url: str) -> Flask:
    """The app: ``/events`` serves the Redis channel, ``/pid`` says which worker answers."""
    app = Flask(__name__)
    app.config["WSGISSE_HEARTBEAT"] = 1.0
    app.config["WSGISSE_RETRY"] = 500
    backend = RedisBackend(redis_url)
    channel = wsgisse.Channel(CHANNEL, backend=backend)
    SSE(app, channel=channel)
    # Every worker reports its endpoint's stats; any worker's /metrics shows them all.
    metrics = backend.fleet_metrics_app(app.extensions["wsgisse"].endpoint.stats)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": metrics})  # type: ignore[method-assign]

    @app.get("/pid")
    def pid() -> str:
        return str(os.getpid())

    @app.get("/publish")
    def publish_view() -> tuple[dict[str, object], int]:
        n = int(request.args["n"])
        key = request.args.get("key")
        began = time.monotonic()
        try:
            if key is None:
                sent = channel.publish({"n": n})
            else:
                sent = backend.publish_once(channel, key, {"n": n})
        except wsgisse.BackendUnavailableError as exc:
            ms = round((time.monotonic() - began) * 1000, 1)
            return {"error": type(exc).__name__, "message": str(exc), "ms": ms}, 503
        return {"id": sent.id, "ms": round((time.monotonic() - began) * 1000, 1)}, 200

    @app.after_request
    def tell_worker(response: Response) -> Response:
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    return app


# Nothing connects at import: the backend's reader starts with a worker's first subscriber.
app = create_app(os.environ.get(URL_VARIABLE, "redis://127.0.0.1:6379/0"))


def publish(redis_url: str, count: int, start: int, interval: float) -> None:
    """Publish ``count`` events, one JSON line of outcome each (see the module docstring)."""
    backend = RedisBackend(redis_url)
    channel = wsgisse.Channel(CHANNEL, backend=backend)
    try:
        for n in range(start, start + count):
            began = time.monotonic()
            outcome: dict[str, object] = {"n": n}
            try:
                outcome["id"] = channel.publish({"n": n}).id
            except wsgisse.BackendUnavailableError as exc:
                outcome["error"] = type(exc).__name__
                outcome["message"] = str(exc)
            outcome["ms"] = round((time.monotonic() - began) * 1000, 1)
            print(json.dumps(outcome), flush=True)
            if interval:
                time.sleep(interval)
    finally:
        backend.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Publish numbered events to the channel.")
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.0)
    args = parser.parse_args(argv)
    publish(args.url, args.count, args.start, args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
