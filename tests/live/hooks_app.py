"""A plain WSGI app whose SSEApp has connection hooks, for the real-server hook tests.

Every hook call is appended, one line each, to the file named by ``$HOOK_LOG`` (so that
a test can read what happened after the server exited): ``connect ID NAME`` and
``disconnect ID NAME``.

Routes:

``GET /events?name=N``
    The channel's stream (heartbeat 0.2 s). ``on_connect`` adds ``N`` to the presence
    list, publishes ``connecting`` (so a live event is published *while* the hook runs),
    and returns a ``snapshot`` event, JSON ``{"online": [...]}``; ``on_disconnect``
    removes the name. ``?fail=1`` makes ``on_connect`` raise.
``POST /publish?data=D``
    Publishes ``D``; answers JSON ``{"id": ...}``.
``GET /presence``
    JSON ``{"online": [...], "pid": P, "direct": N}`` (N: the channel's direct writes).
``POST /shutdown``
    Calls ``wsgisse.shutdown()`` and answers how many streams it ended.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import wsgisse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

channel = wsgisse.Channel("room", history=100)
_online: dict[str, str] = {}  # connection id -> name
_lock = threading.Lock()


def _record(line: str) -> None:
    path = os.environ.get("HOOK_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def _name(connection: wsgisse.Connection) -> str:
    query = parse_qs(str(connection.environ.get("QUERY_STRING", "")))
    return query.get("name", ["anonymous"])[0]


def on_connect(connection: wsgisse.Connection) -> wsgisse.ServerSentEvent:
    query = parse_qs(str(connection.environ.get("QUERY_STRING", "")))
    if query.get("fail"):
        raise RuntimeError("the snapshot store is down")
    name = _name(connection)
    with _lock:
        _online[connection.id] = name
        online = sorted(_online.values())
    _record(f"connect {connection.id} {name}")
    channel.publish(name, event="connecting")
    return wsgisse.ServerSentEvent({"online": online}, event="snapshot")


def on_disconnect(connection: wsgisse.Connection) -> None:
    with _lock:
        name = _online.pop(connection.id, "?")
    _record(f"disconnect {connection.id} {name}")


endpoint = wsgisse.SSEApp(
    channel, heartbeat=0.2, retry=500, on_connect=on_connect, on_disconnect=on_disconnect
)


def _json(start_response: StartResponse, payload: object) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Route the requests listed in the module's documentation."""
    path = environ.get("PATH_INFO", "")
    query: dict[str, Any] = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/events":
        return endpoint(environ, start_response)
    if path == "/publish":
        sent = channel.publish(query.get("data", ["x"])[0])
        return _json(start_response, {"id": sent.id})
    if path == "/presence":
        with _lock:
            online = sorted(_online.values())
        direct = channel.counters()["direct_writes"]
        return _json(start_response, {"online": online, "pid": os.getpid(), "direct": direct})
    if path == "/shutdown":
        return _json(start_response, {"ended": wsgisse.shutdown(timeout=5)})
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
