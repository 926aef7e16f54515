"""The wsgisse bench app, served by ``gunicorn -k gevent`` (see benchmarks/_servers.py).

Plain WSGI: :class:`wsgisse.SSEMiddleware` serves ``/events`` from one channel, ``POST
/publish`` publishes the request body, ``/stream`` is a generator view (the token
stream), ``/stats`` counts subscribers (and, with ``?full=1``, what the soak checks).

Environment:
    BENCH_REDIS_URL: use the Redis backend (``wsgisse.backends.redis``) on this server.
    BENCH_HEARTBEAT: heartbeat seconds (default 15, the library's default).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import wsgisse
from benchmarks.peers._common import process_figures, token

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def _redis_backend(url: str) -> Any:
    """The Redis backend for ``url``, whichever constructor the backend module offers."""
    from wsgisse.backends import redis as redis_backend  # noqa: PLC0415 - optional

    cls = redis_backend.RedisBackend
    from_url = getattr(cls, "from_url", None)
    return from_url(url) if from_url is not None else cls(url)


_url = os.environ.get("BENCH_REDIS_URL")
channel = wsgisse.Channel("bench", backend=_redis_backend(_url) if _url else None)
_heartbeat = float(os.environ.get("BENCH_HEARTBEAT", "15"))


def _tokens() -> Iterator[str]:
    for seq in itertools.count(1):
        yield token(seq)


def _answer(start_response: StartResponse, status: str, body: bytes = b"") -> list[bytes]:
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def routes(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Everything but ``/events``."""
    path = environ.get("PATH_INFO", "")
    if path == "/publish" and environ["REQUEST_METHOD"] == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        channel.publish(environ["wsgi.input"].read(size).decode())
        return _answer(start_response, "204 No Content")
    if path == "/stream":
        return wsgisse.stream_response(environ, start_response, _tokens(), heartbeat=_heartbeat)
    if path == "/stats":
        stats: dict[str, Any] = {"pid": os.getpid(), "subscribers": channel.subscriber_count}
        stats["scope"] = "process"
        if "full=1" in environ.get("QUERY_STRING", ""):
            stats.update(process_figures())
        return _answer(start_response, "200 OK", json.dumps(stats).encode())
    return _answer(start_response, "404 Not Found")


application = wsgisse.SSEMiddleware(routes, channel, path="/events", heartbeat=_heartbeat)
