"""The wsgisse bench app for events aimed at one user, served by ``gunicorn -k gevent``.

Two ways an app gives each user their own events (``BENCH_USERS``):

``audience``
    One channel; ``/events?user=u123`` is authenticated as user ``u123`` (the
    ``authorize`` hook returns the name from the query string, where a real app would
    read its session cookie), and ``POST /publish?user=u123`` publishes the body with
    ``audience=["u123"]``.
``channels``
    A channel per user, made on first use by the ``channels=`` factory:
    ``/events?channel=u123`` subscribes to channel ``u123`` and ``POST
    /publish?channel=u123`` publishes to it.

In both, ``POST /publish`` without a name reaches every subscriber (the driver's flush,
see benchmarks/_loadgen.py), ``/stats`` counts subscribers over every channel, and
``POST /make-channels?n=N&events=E`` (``channels`` only) makes N more channels with no
subscriber and E events each, and keeps them: the per-idle-channel memory scenario.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import wsgisse
from benchmarks.peers._common import process_figures

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MODE = os.environ.get("BENCH_USERS", "audience")
_heartbeat = float(os.environ.get("BENCH_HEARTBEAT", "15"))

#: ``audience``: the one channel. ``channels``: every channel made so far, by name (a
#: real app keeps them too, so that a reconnecting user finds its history).
broadcast = wsgisse.Channel("bench")
by_name: dict[str, wsgisse.Channel] = {}


def channel_for(name: str) -> wsgisse.Channel:
    """The user's channel, made on first use (the ``channels=`` factory)."""
    channel = by_name.get(name)
    if channel is None:
        channel = by_name[name] = wsgisse.Channel(name)
    return channel


def authorize(environ: WSGIEnvironment, channels: tuple[str, ...]) -> bool | str:
    """The user named by ``?user=``; anonymous (every broadcast) without one."""
    del channels
    users = parse_qs(environ.get("QUERY_STRING", "")).get("user")
    return users[0] if users else True


def _answer(start_response: StartResponse, status: str, body: bytes = b"") -> list[bytes]:
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _subscribers() -> int:
    if MODE == "audience":
        return broadcast.subscriber_count
    return sum(channel.subscriber_count for channel in by_name.values())


def _publish(query: dict[str, list[str]], data: str) -> None:
    if MODE == "audience":
        users = query.get("user")
        broadcast.publish(data, audience=users)  # None: everybody
        return
    names = query.get("channel")
    if names:
        channel_for(names[0]).publish(data)
        return
    for channel in list(by_name.values()):
        if channel.subscriber_count:
            channel.publish(data)


def _make_channels(query: dict[str, list[str]]) -> dict[str, Any]:
    """``n`` more channels, each with ``events`` events and no subscriber."""
    count = int(query.get("n", ["0"])[0])
    events = int(query.get("events", ["0"])[0])
    first = len(by_name)
    for index in range(first, first + count):
        channel = channel_for(f"idle{index}")
        for _ in range(events):
            channel.publish("x" * 100)
    return {"channels": len(by_name)}


def routes(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Everything but ``/events``."""
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    post = environ["REQUEST_METHOD"] == "POST"
    if path == "/publish" and post:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        _publish(query, environ["wsgi.input"].read(size).decode())
        return _answer(start_response, "204 No Content")
    if path == "/make-channels" and post and MODE == "channels":
        return _answer(start_response, "200 OK", json.dumps(_make_channels(query)).encode())
    if path == "/stats":
        stats: dict[str, Any] = {"pid": os.getpid(), "subscribers": _subscribers()}
        stats["channels"] = len(by_name) if MODE == "channels" else 1
        if "full=1" in environ.get("QUERY_STRING", ""):
            stats.update(process_figures())
        return _answer(start_response, "200 OK", json.dumps(stats).encode())
    return _answer(start_response, "404 Not Found")


application = wsgisse.SSEMiddleware(
    routes,
    broadcast if MODE == "audience" else channel_for,
    path="/events",
    heartbeat=_heartbeat,
    authorize=authorize if MODE == "audience" else None,
)
