"""A reply streamed word by word, as a chat model's: a Flask generator view.

``GET /reply?prompt=...`` answers with an event stream made by a generator: one unnamed
event per word (with its leading space, as a model's tokens come), a short pause between
words, then a ``done`` event whose data is ``{"words": N}``, and the stream ends. The page
shows the words as they arrive, and its Stop button closes the ``EventSource``: the server
notices at its next write and closes the generator, running its ``finally`` blocks.

The page also closes the ``EventSource`` on ``done`` and on an error: a browser reconnects
to a stream that ends, and here that would ask for the whole reply again. This is the
one example that keeps the browser's bare ``EventSource`` rather than wsgisse.js (see
docs/client.rst): a one-shot reply has nothing to resume, share or come back to.

Run it, and open http://127.0.0.1:8000 (``$HOST`` and ``$PORT`` override)::

    python examples/tokens.py

In production, with gunicorn's gevent workers (each reply then runs in a greenlet)::

    gunicorn -k gevent --chdir examples 'tokens:create_app()'
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, Response, current_app, request, stream_with_context

from wsgisse import ServerSentEvent
from wsgisse.integrations.flask import stream

ANSWER = (
    "Server-sent events are a plain HTTP response that never ends: the server writes "
    "an event whenever it has one, and the browser's EventSource hands each to the page "
    "as it arrives. That is all a streamed reply needs, one word after another."
)

PAGE = """\
<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>wsgisse tokens</title>
<style>
  body { font: 1.1rem system-ui, sans-serif; margin: 2rem; max-width: 40rem; }
  #prompt { width: 70%; }
  #reply { white-space: pre-wrap; min-height: 4rem; }
  #status { color: #666; }
</style>
<h1>Streamed reply</h1>
<form id="form">
  <input id="prompt" value="What are server-sent events?">
  <button id="generate">Generate</button>
  <button id="stop" type="button" disabled>Stop</button>
</form>
<p id="reply"></p>
<p id="status">idle</p>
<script>
  const reply = document.getElementById("reply");
  const status = document.getElementById("status");
  const stopButton = document.getElementById("stop");
  let source = null;

  function finish(text) {
    source.close();  // closed for good: the browser will not reconnect
    status.textContent = text;
    stopButton.disabled = true;
  }

  document.getElementById("form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (source) source.close();
    reply.textContent = "";
    status.textContent = "streaming…";
    stopButton.disabled = false;
    const prompt = document.getElementById("prompt").value;
    // A relative URL, so the page also works mounted under a prefix (see demo.py).
    source = new EventSource("reply?" + new URLSearchParams({prompt}));
    source.onmessage = (event) => { reply.textContent += event.data; };
    source.addEventListener("done", () => finish("done"));
    source.onerror = () => finish("interrupted");
  });
  stopButton.addEventListener("click", () => finish("stopped"));
</script>
"""


def compose_reply(prompt: str) -> str:
    """The reply to ``prompt``: this example's stand-in for a language model."""
    return f"You asked: “{prompt.strip()}”. {ANSWER}"


def words(text: str) -> list[str]:
    """Split ``text`` into words that keep their leading space, as a model's tokens do."""
    return re.findall(r"\s*\S+", text)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Make the tokens app; ``config`` updates its Flask config.

    ``TOKEN_DELAY`` is the pause between two words, in seconds (default 0.08).
    """
    app = Flask(__name__)
    app.config["TOKEN_DELAY"] = 0.08
    app.config.from_mapping(config or {})

    @app.get("/")
    def index() -> str:
        return PAGE

    @app.get("/reply")
    def reply() -> Response:
        # stream_with_context: the generator runs after the view has returned, in a
        # worker of its own, and still reads the request and the app's config.
        @stream_with_context
        def generate() -> Iterator[str | ServerSentEvent]:
            tokens = words(compose_reply(request.args.get("prompt", "")))
            for token in tokens:
                yield token
                time.sleep(current_app.config["TOKEN_DELAY"])
            yield ServerSentEvent({"words": len(tokens)}, event="done")

        return stream(generate())

    return app


if __name__ == "__main__":
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    create_app().run(host, port, threaded=True)
