"""The app of the browser client's tests (``tests/test_client_browser.py``, ``..._firefox.py``).

Served by gunicorn (``-k gevent``, one worker), so that one process counts every stream.

``GET /`` a page that loads ``/harness.js`` (which imports ``/events/wsgisse.js``, served by
:class:`wsgisse.SSEMiddleware`); ``GET /frame`` the same, for an iframe standing in for a
tab; ``GET /firefox`` the page that runs every scenario by itself and posts the results.

``GET /events?channel=news[&channel=alerts][&user=U]``
    The channels ``news`` and ``alerts``, ``retry: 200``. The ``authorize`` hook counts
    each request by ``user`` and answers ``204`` to the user ``gone``.
``GET /flaky/events?...``
    The same channels behind a front that answers ``502 Bad Gateway`` while it is down
    (``POST /flaky/down``, ``POST /flaky/up``), as a proxy does while its backend
    restarts; going down cuts the streams open through it, and loses the chunk in flight.
``GET /capped/events?...``
    The same channels, one stream at a time: the next one is refused for capacity (a 200
    stream holding only ``wsgisse-end`` reason ``capacity`` and ``retry: 300``-``600``).
``POST /publish?channel=C&data=D&count=N``
    Publishes N events (data ``D0``.. or ``D`` when N is 1); JSON ``{"ids": [...]}``.
``POST /revoke?user=U``
    Ends U's streams with ``wsgisse-end`` reason ``revoked``; the hook refuses U after.
``GET /stats``
    JSON: ``connected`` (streams open now), ``requests`` (per user), ``bad_gateway``.
``POST /report`` / ``GET /report``
    Stores and returns what the Firefox page found (``null`` until then).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import wsgisse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HERE = Path(__file__).parent
channels = {"news": wsgisse.Channel("news"), "alerts": wsgisse.Channel("alerts")}
requests: Counter[str] = Counter()
revoked: set[str] = set()
state: dict[str, Any] = {"down": False, "generation": 0, "bad_gateway": 0, "report": None}


def _user(environ: WSGIEnvironment) -> str:
    return parse_qs(str(environ.get("QUERY_STRING", ""))).get("user", ["anonymous"])[0]


def authorize(environ: WSGIEnvironment, names: tuple[str, ...]) -> bool | str | int | None:
    user = _user(environ)
    requests[user] += 1
    if user == "gone":
        return 204
    if user in revoked:
        return False
    return user


OPTIONS: dict[str, Any] = {"retry": 200, "heartbeat": 0.3, "authorize": authorize}
flaky = wsgisse.SSEApp(channels, direct_writes=False, **OPTIONS)
# One stream at a time; the next is told to come back in 300-600 ms.
capped = wsgisse.SSEApp(channels, max_connections=1, capacity_retry=300, **OPTIONS)


class _Cut:
    """A stream that a proxy going down cuts: the chunk in flight is lost."""

    def __init__(self, body: Iterable[bytes]) -> None:
        self.body = body
        self.generation = state["generation"]

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            if state["generation"] != self.generation:
                return
            yield chunk

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


def _json(start_response: StartResponse, payload: object) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]


def _file(start_response: StartResponse, name: str, content_type: str) -> list[bytes]:
    body = (HERE / name).read_bytes()
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def site(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:  # noqa: PLR0911 - one branch per route
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    query = {k: v[0] for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()}
    if path in ("/", "/frame", "/firefox"):
        return _file(start_response, "client_page.html", "text/html; charset=utf-8")
    if path == "/harness.js":
        return _file(start_response, "client_harness.js", "text/javascript; charset=utf-8")
    if path == "/flaky/events":
        if state["down"]:
            state["bad_gateway"] += 1
            body = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
            start_response(
                "502 Bad Gateway",
                [("Content-Type", "text/html"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return _Cut(flaky(environ, start_response))
    if path == "/capped/events":
        return capped(environ, start_response)
    if method == "POST" and path == "/publish":
        count = int(query.get("count", "1"))
        data = query.get("data", "e")
        channel = channels[query.get("channel", "news")]
        items = [data] if count == 1 else [f"{data}{n}" for n in range(count)]
        return _json(start_response, {"ids": [channel.publish(item).id for item in items]})
    if method == "POST" and path == "/revoke":
        revoked.add(query["user"])
        return _json(start_response, {"ended": middleware.endpoint.revoke(user=query["user"])})
    if method == "POST" and path in ("/flaky/down", "/flaky/up"):
        state["down"] = path.endswith("down")
        state["generation"] += 1
        return _json(start_response, {"down": state["down"]})
    if path == "/stats":
        stats = {
            "connected": middleware.endpoint.connected,
            "flaky_connected": flaky.connected,
            "capped_connected": capped.connected,
            "requests": dict(requests),
            "bad_gateway": state["bad_gateway"],
        }
        return _json(start_response, stats)
    if path == "/report":
        if method == "POST":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            state["report"] = json.loads(environ["wsgi.input"].read(size))
        return _json(start_response, state["report"])
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]


middleware = wsgisse.SSEMiddleware(site, channels, path="/events", **OPTIONS)
app: WSGIApplication = middleware
