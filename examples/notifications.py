"""Notifications with Flask: post a message, and every open tab receives it.

The Flask extension serves the app's channel at ``/events``; ``POST /notify`` (a form,
or JSON ``{"message": "..."}``) publishes a ``notification`` event on it. A tab that
loses its connection reconnects by itself, and its browser sends the id of the last
event it received (``Last-Event-ID``): the channel replays exactly the notifications it
missed, from its history (``WSGISSE_HISTORY``, 1000 events).

Presence, with the connection hooks: a page connects as ``events?name=NAME`` (a visitor
name it makes up). ``on_connect`` counts the name in, publishes ``joined`` when it is the
name's first tab, and sends that page a ``presence`` snapshot (JSON list of who is
online) *before* any replayed or live event; ``on_disconnect`` (exactly once per stream,
also when the server shuts down) counts it out and publishes ``left`` when its last tab
has gone. The page applies them to a set, so a ``joined`` that the snapshot already
holds changes nothing. ``GET /presence`` answers the list as JSON. A stream with no name
(``curl``, a script) is not counted. The list is per process: with several workers, keep
it in a shared store (Redis) instead.

Run it, and open http://127.0.0.1:8000 in two tabs (``$HOST`` and ``$PORT`` override)::

    python examples/notifications.py

In production, with gunicorn's gevent workers::

    gunicorn -k gevent --chdir examples 'notifications:create_app()'

With several worker processes, each has its own channel: publish through the Redis
backend (``wsgisse.backends.redis``) so that every worker's clients hear every message.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from flask import Flask, current_app, redirect, request, url_for
from werkzeug.wrappers import Response

from wsgisse import Connection, ServerSentEvent
from wsgisse.integrations.flask import SSE

#: The longest visitor name counted in the presence list.
MAX_NAME = 40


class Presence:
    """Who is online in one app: open streams per visitor name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tabs: Counter[str] = Counter()

    def online(self) -> list[str]:
        """The names with at least one open stream, sorted."""
        with self.lock:
            return sorted(self.tabs)


def _presence() -> Presence:
    presence: Presence = current_app.extensions["notifications.presence"]
    return presence


def _visitor(connection: Connection) -> str | None:
    """The name a stream gave (``?name=``), if it is one we count."""
    names = parse_qs(str(connection.environ.get("QUERY_STRING", ""))).get("name", [])
    name = names[0].strip() if names else ""
    return name if 0 < len(name) <= MAX_NAME and name.isprintable() else None


def on_connect(connection: Connection) -> ServerSentEvent | None:
    """Count the visitor in; return the presence snapshot sent before any other event."""
    name = _visitor(connection)
    if name is None:
        return None
    presence = _presence()
    with presence.lock:
        presence.tabs[name] += 1
        first_tab = presence.tabs[name] == 1
    if first_tab:
        # The page is subscribed already, so it also hears its own joined: a no-op on a set.
        sse.publish(name, event="joined")
    return ServerSentEvent(presence.online(), event="presence")


def on_disconnect(connection: Connection) -> None:
    """Count the visitor out; tell everyone when its last tab has gone."""
    name = _visitor(connection)
    if name is None:
        return
    presence = _presence()
    with presence.lock:
        presence.tabs[name] -= 1
        last_tab = presence.tabs[name] <= 0
        if last_tab:
            del presence.tabs[name]
    if last_tab:
        sse.publish(name, event="left")


sse = SSE(on_connect=on_connect, on_disconnect=on_disconnect)

PAGE = """\
<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>wsgisse notifications</title>
<style>
  body { font: 1rem system-ui, sans-serif; margin: 2rem; max-width: 40rem; }
  textarea { width: 100%; }
  li { white-space: pre-wrap; margin: .3rem 0; }
  #status { color: #666; }
</style>
<h1>Notifications</h1>
<form id="form" method="post" action="notify">
  <textarea id="message" name="message" rows="3" required></textarea>
  <button>Send to every tab</button>
</form>
<p id="status">connecting…</p>
<p>You are <b id="me"></b>. Online: <span id="online"></span></p>
<ol id="messages"></ol>
<script type="module">
  // wsgisse.js, the browser client, served next to the stream. Relative URLs, so the page
  // also works mounted under a prefix (see demo.py).
  import { WsgisseEventSource } from "./events/wsgisse.js";

  // A made-up visitor name, kept by this browser: its tabs are one visitor.
  const me = localStorage.getItem("name") ||
    "visitor-" + Math.floor(Math.random() * 1e6).toString().padStart(6, "0");
  localStorage.setItem("name", me);
  document.getElementById("me").textContent = me;
  const status = document.getElementById("status");
  // Each tab opens its own stream: the presence snapshot (on_connect) is sent to a stream
  // when it opens, and a tab joining a shared stream would not get one (clock.py and
  // monitor.py share one connection among all tabs). After any failure it reconnects with
  // ?lastEventId=, and the channel replays exactly what was missed.
  const source = new WsgisseEventSource("events?name=" + encodeURIComponent(me), {
    onHistoryLost: () => {
      // The server no longer holds what was missed: say so (a real app reloads its state).
      status.textContent = "some notifications were missed: reload the page to see them";
    },
    onEnd: (reason) => {
      if (reason === "revoked") status.textContent = "access revoked";  // it has stopped
    },
  });
  window.source = source;

  // Presence: the snapshot comes first, then joined/left; a set makes repeats harmless.
  const online = new Set();
  const showOnline = () => {
    document.getElementById("online").textContent = [...online].sort().join(", ");
  };
  source.addEventListener("presence", (event) => {
    online.clear();
    for (const name of JSON.parse(event.data)) online.add(name);
    showOnline();
  });
  source.addEventListener("joined", (event) => { online.add(event.data); showOnline(); });
  source.addEventListener("left", (event) => { online.delete(event.data); showOnline(); });
  source.onopen = () => { status.textContent = "connected"; };
  source.onerror = () => {
    if (source.readyState !== WsgisseEventSource.CLOSED) status.textContent = "reconnecting…";
  };
  source.addEventListener("notification", (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;  // text, not HTML: line breaks kept by white-space
    document.getElementById("messages").append(item);
  });

  document.getElementById("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = document.getElementById("message");
    await fetch("notify", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({message: message.value}),
    });
    message.value = "";
  });
</script>
"""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Make the notifications app; ``config`` updates its Flask config.

    With ``TESTING`` set, ``POST /_test/disconnect`` ends every open stream, so that a
    test can watch the browsers reconnect and catch up.
    """
    app = Flask(__name__)
    app.config.from_mapping(config or {})
    app.extensions["notifications.presence"] = Presence()
    sse.init_app(app)

    @app.get("/")
    def index() -> str:
        return PAGE

    @app.get("/presence")
    def presence() -> dict[str, Any]:
        return {"online": _presence().online()}

    @app.post("/notify")
    def notify() -> Response | tuple[dict[str, Any], int]:
        payload = request.get_json(silent=True) if request.is_json else request.form
        message = payload.get("message") if isinstance(payload, Mapping) else None
        if not isinstance(message, str) or not message.strip():
            return {"error": "a non-empty message is required"}, 400
        sent = sse.publish(message, event="notification")
        if request.is_json:
            return {"id": sent.id}, 201
        return redirect(url_for("index"), 303)  # a form posted without JavaScript

    if app.testing:

        @app.post("/_test/disconnect")
        def disconnect() -> dict[str, Any]:
            return {"ended": sse.channel.end_subscriptions("test")}

    return app


if __name__ == "__main__":
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    create_app().run(host, port, threaded=True)
