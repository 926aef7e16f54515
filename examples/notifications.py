"""Notifications with Flask: post a message, and every open tab receives it.

The Flask extension serves the app's channel at ``/events``; ``POST /notify`` (a form,
or JSON ``{"message": "..."}``) publishes a ``notification`` event on it. A tab that
loses its connection reconnects by itself, and its browser sends the id of the last
event it received (``Last-Event-ID``): the channel replays exactly the notifications it
missed, from its history (``WSGISSE_HISTORY``, 1000 events).

Run it, and open http://127.0.0.1:8000 in two tabs (``$HOST`` and ``$PORT`` override)::

    python examples/notifications.py

In production, with gunicorn's gevent workers::

    gunicorn -k gevent --chdir examples 'notifications:create_app()'

With several worker processes, each has its own channel: publish through the Redis
backend (``wsgisse.backends.redis``) so that every worker's clients hear every message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, redirect, request, url_for
from werkzeug.wrappers import Response

from wsgisse.integrations.flask import SSE

sse = SSE()

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
<ol id="messages"></ol>
<script type="module">
  // wsgisse.js, the browser client, served next to the stream. Relative URLs, so the page
  // also works mounted under a prefix (see demo.py).
  import { WsgisseEventSource } from "./events/wsgisse.js";

  const status = document.getElementById("status");
  // share: every tab of this site shares one connection (a browser allows only six per
  // site over HTTP/1.1). After any failure it reconnects with ?lastEventId=, and the
  // channel replays exactly what was missed.
  const source = new WsgisseEventSource("events", {
    share: true,
    onHistoryLost: () => {
      // The server no longer holds what was missed: say so (a real app reloads its state).
      status.textContent = "some notifications were missed: reload the page to see them";
    },
    onEnd: (reason) => {
      if (reason === "revoked") status.textContent = "access revoked";  // it has stopped
    },
  });
  window.source = source;
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
    sse.init_app(app)

    @app.get("/")
    def index() -> str:
        return PAGE

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
