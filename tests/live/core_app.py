"""A plain WSGI app around one wsgisse Channel, for the real-server tests.

Routes:

``GET /events``
    The channel's event stream (heartbeat from ``$WSGISSE_HEARTBEAT``, default 0.2 s, so
    that a gone client is noticed quickly).
``POST /publish?data=D&count=N&event=E&size=S&via=thread|request``
    Publishes N events (data ``D``, or ``0``..``N-1`` when ``D`` is absent, or the
    publish time padded to ``S`` bytes). ``via=thread``
    publishes from a native OS thread (the original, unpatched ``_thread`` even under
    gevent's monkey-patching), as a library's worker thread would; it answers once that
    thread has finished.
``GET /nodelay``
    JSON ``{"nodelay": 1}`` when wsgisse found this request's socket and turned Nagle off.
``GET /stats``
    JSON: ``{"pid": ..., "subscribers": ..., "last_event_id": ...}``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import wsgisse
from wsgisse._request import client_socket, set_no_delay
from wsgisse._sync import current_hub

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

channel = wsgisse.Channel(history=5000)


def _native_thread_run(work: Callable[[], None]) -> None:
    """Run ``work`` in a real OS thread and wait for it without blocking a gevent hub."""
    hub = current_hub()
    if hub is not None:
        # gevent's thread pool runs real OS threads (patched or not); only this greenlet
        # waits for the result.
        hub.threadpool.apply(work)
        return
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)


def _json(start_response: StartResponse, payload: object, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = {name: values[-1] for name, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/publish" and environ["REQUEST_METHOD"] == "POST":
        count = int(query.get("count", "1"))
        data = query.get("data")
        if "size" in query:  # a timestamp padded to size bytes, for latency runs
            data = f"{time.time():.6f} ".ljust(int(query["size"]), "x")
        event = query.get("event")
        ids: list[str | None] = []

        def work() -> None:
            ids.extend(
                channel.publish(str(n) if data is None else data, event=event).id
                for n in range(count)
            )

        if query.get("via") == "thread":
            _native_thread_run(work)
        else:
            work()
        return _json(start_response, {"ids": ids})
    if path == "/nodelay":
        set_no_delay(environ)
        sock = client_socket(environ)
        flag = None if sock is None else sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        return _json(start_response, {"nodelay": flag})
    if path == "/stats":
        return _json(
            start_response,
            {
                "pid": os.getpid(),
                "subscribers": channel.subscriber_count,
                "last_event_id": channel.last_event_id,
                "counters": channel.counters(),
                "hangups": _served.endpoint.stats.snapshot()["hangups"],
            },
        )
    return _json(start_response, {"error": "not found"}, "404 Not Found")


_served = wsgisse.SSEMiddleware(
    _app,
    channel,
    "/events",
    heartbeat=float(os.environ.get("WSGISSE_HEARTBEAT", "0.2")),
    write_timeout=float(os.environ.get("WSGISSE_WRITE_TIMEOUT", "30")),
)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Every answer says which worker process gave it (``X-Worker-Pid``)."""

    def tagged(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return _served(environ, tagged)
