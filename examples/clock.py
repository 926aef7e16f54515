"""A clock pushed to the browser: plain WSGI, one channel, one publishing thread.

Every second the server publishes three events, which every open page receives:

* an unnamed event (``onmessage``) with the UTC time, ``2025-01-01T12:00:00+00:00``;
* an ``est`` event with the time in New York (``America/New_York``: EST or EDT);
* a ``pdt`` event with the time in Los Angeles (``America/Los_Angeles``: PST or PDT).

Run it, and open http://127.0.0.1:8000 (``$HOST`` and ``$PORT`` override)::

    python examples/clock.py

In production, with gunicorn's gevent workers (the factory starts each worker's ticker)::

    gunicorn -k gevent --chdir examples 'clock:create_app()'

The time zones come from the system's zone database; where there is none (Windows),
``pip install tzdata``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import wsgisse

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")

PAGE = """\
<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>wsgisse clock</title>
<style>
  body { font: 1.2rem system-ui, sans-serif; margin: 2rem; }
  dd { font: 1.6rem ui-monospace, monospace; margin: 0 0 1rem; }
</style>
<h1>Clock</h1>
<dl>
  <dt>UTC</dt><dd id="utc">…</dd>
  <dt>New York</dt><dd id="est">…</dd>
  <dt>Los Angeles</dt><dd id="pdt">…</dd>
</dl>
<p id="status"></p>
<script type="module">
  // wsgisse.js, the browser client, served next to the stream. Relative URLs, so the page
  // also works mounted under a prefix (see demo.py).
  import { WsgisseEventSource } from "./events/wsgisse.js";

  const status = document.getElementById("status");
  const source = new WsgisseEventSource("events", {
    share: true,  // one connection for all the tabs showing the clock
    onHistoryLost: () => { status.textContent = ""; },  // only the latest time matters
    onEnd: (reason) => { status.textContent = reason === "revoked" ? "stopped" : ""; },
  });
  window.source = source;
  const show = (id) => (event) => { document.getElementById(id).textContent = event.data; };
  source.onmessage = show("utc");                  // unnamed events
  source.addEventListener("est", show("est"));     // named events need a listener each
  source.addEventListener("pdt", show("pdt"));
</script>
"""


def tick(channel: wsgisse.Channel) -> None:
    """Publish the time at every whole second, forever."""
    while True:
        time.sleep(1 - time.time() % 1)
        now = datetime.fromtimestamp(round(time.time()), timezone.utc)
        channel.publish(now.isoformat())
        channel.publish(now.astimezone(NEW_YORK).isoformat(), event="est")
        channel.publish(now.astimezone(LOS_ANGELES).isoformat(), event="pdt")


def page(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The HTML page at ``/``; 404 anywhere else."""
    if environ.get("PATH_INFO") in ("", "/"):
        body = PAGE.encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    else:
        body = b"not found\n"
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
    return [body]


def create_app() -> WSGIApplication:
    """Make the clock app and start its ticker (a daemon thread; a greenlet under gevent).

    The page is at ``/`` and the event stream at ``/events``.
    """
    # A clock has nothing worth replaying: a page that reconnects shows the next tick.
    channel = wsgisse.Channel("clock", history=0)
    threading.Thread(target=tick, args=(channel,), name="clock ticker", daemon=True).start()
    return wsgisse.SSEMiddleware(page, channel, path="/events")


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    run_simple(host, port, create_app(), threaded=True)
