"""A plain WSGI app around one wsgisse Channel, for the real-server tests.

Routes:

``GET /events``
    The channel's event stream (heartbeat from ``$WSGISSE_HEARTBEAT``, default 0.2 s, so
    that a gone client is noticed quickly).
``POST /publish?data=D&count=N&event=E&size=S&via=thread|request``
    Publishes N events (data ``D``, or ``0``..``N-1`` when ``D`` is absent, or the
    publish time padded to ``S`` bytes). With ``publishers=P&via=thread|greenlets``, P
    native threads (or greenlets) publish the N events together, as a burst, with data
    ``"<publisher>-<n>"``. ``via=thread``
    publishes from a native OS thread (the original, unpatched ``_thread`` even under
    gevent's monkey-patching), as a library's worker thread would; it answers once that
    thread has finished.
``GET /nodelay``
    JSON ``{"nodelay": 1}`` when wsgisse found this request's socket and turned Nagle off.
``GET /stats``
    JSON: ``{"pid": ..., "subscribers": ..., "last_event_id": ..., "greenlets": ...,
    "fds": ...}`` (the live greenlets and open descriptors of the worker).

``$WSGISSE_MAX_LIFETIME`` (seconds) sets the streams' ``max_lifetime``.
"""

from __future__ import annotations

import gc
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

channel = wsgisse.Channel(
    history=int(os.environ.get("WSGISSE_HISTORY", "5000")),
    slow_after=float(os.environ.get("WSGISSE_SLOW_AFTER", "5")),
)


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


def _burst(count: int, publishers: int, *, via: str, ids: list[str | None]) -> None:
    """``publishers`` native threads (or greenlets) publish ``count`` events at once.

    Event data is ``"<publisher>-<n>"``, so that a reader can check it got all of them.
    """

    def publish_share(who: int) -> None:
        ids.extend(channel.publish(f"{who}-{n}").id for n in range(who, count, publishers))

    if via == "thread":
        hub = current_hub()
        if hub is not None:
            pool = hub.threadpool
            pool.maxsize = max(pool.maxsize, publishers)
            results = [pool.spawn(publish_share, who) for who in range(publishers)]
            for result in results:
                result.get(timeout=30)
            return
        threads = [threading.Thread(target=publish_share, args=(who,)) for who in range(publishers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return
    import gevent  # noqa: PLC0415 - only this route needs it

    gevent.joinall([gevent.spawn(publish_share, who) for who in range(publishers)], timeout=30)


def _json(start_response: StartResponse, payload: object, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _greenlets() -> int:
    """How many greenlets are alive in this process (-1 without greenlet)."""
    try:
        from greenlet import greenlet  # noqa: PLC0415 - only under gevent
    except ImportError:
        return -1
    gc.collect()
    return sum(1 for item in gc.get_objects() if isinstance(item, greenlet) and not item.dead)


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

        publishers = int(query.get("publishers", "1"))
        if publishers > 1:
            _burst(count, publishers, via=query.get("via", "greenlets"), ids=ids)
        elif query.get("via") == "thread":
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
                "greenlets": _greenlets(),
                "fds": len(os.listdir("/proc/self/fd")),
            },
        )
    return _json(start_response, {"error": "not found"}, "404 Not Found")


_served = wsgisse.SSEMiddleware(
    _app,
    channel,
    "/events",
    heartbeat=float(os.environ.get("WSGISSE_HEARTBEAT", "0.2")),
    write_timeout=float(os.environ.get("WSGISSE_WRITE_TIMEOUT", "30")),
    max_lifetime=float(os.environ["WSGISSE_MAX_LIFETIME"])
    if "WSGISSE_MAX_LIFETIME" in os.environ
    else None,
)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Every answer says which worker process gave it (``X-Worker-Pid``)."""

    def tagged(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, ("X-Worker-Pid", str(os.getpid()))], exc_info)

    return _served(environ, tagged)
