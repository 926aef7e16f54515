"""Plain WSGI apps that the infrastructure tests serve; they use nothing of wsgisse.

``stream_app`` routes:

``/``
    An HTML page whose script opens an ``EventSource`` on ``/events`` and records what it
    receives in ``window.received`` (``{type, data, lastEventId}`` objects) and
    ``window.opened`` / ``window.errors`` (counts).
``/events?count=N&interval=S&hold=S``
    ``text/event-stream``: N events (default 1), each ``id: <n>`` and ``data: hi``,
    S seconds apart (default 0); then a comment every 0.25 s until ``hold`` seconds
    (default 30) have passed, so a server notices a client that left, and the stream
    always ends.
``/fixed``
    Two events in a body with a Content-Length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# The longest a stream stays open, whatever the query string asks.
MAX_HOLD = 60.0

PAGE = b"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>wsgisse live test</title></head>
<body>
<p id="status">connecting</p>
<script>
window.received = [];
window.opened = 0;
window.errors = 0;
const source = new EventSource("/events" + location.search);
source.onopen = () => {
  window.opened += 1;
  document.getElementById("status").textContent = "open";
};
source.onerror = () => { window.errors += 1; };
source.onmessage = (e) => {
  window.received.push({type: e.type, data: e.data, lastEventId: e.lastEventId});
};
window.source = source;
</script>
</body>
</html>
"""

FIXED_BODY = b"id: a\ndata: one\n\nid: b\ndata: two\n\n"


def _number(query: dict[str, list[str]], name: str, default: float) -> float:
    values = query.get(name)
    return float(values[0]) if values else default


def _events(count: int, interval: float, hold: float) -> Iterator[bytes]:
    for n in range(1, count + 1):
        if n > 1 and interval:
            time.sleep(interval)
        yield f"id: {n}\ndata: hi\n\n".encode()
    deadline = time.monotonic() + min(hold, MAX_HOLD)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        yield b": keep-alive\n\n"


def stream_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The routes above; anything else is a 404."""
    path = environ.get("PATH_INFO", "")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/":
        start_response(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE)))],
        )
        return [PAGE]
    if path == "/events":
        count = int(_number(query, "count", 1))
        interval = _number(query, "interval", 0.0)
        hold = _number(query, "hold", 30.0)
        start_response(
            "200 OK",
            [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache")],
        )
        return _events(count, interval, hold)
    if path == "/fixed":
        start_response(
            "200 OK",
            [("Content-Type", "text/event-stream"), ("Content-Length", str(len(FIXED_BODY)))],
        )
        return [FIXED_BODY]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
