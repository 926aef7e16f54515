"""Apps and helpers for test_flask.py, test_bottle.py and test_examples.py.

The Flask and Bottle test apps are built by factories, so that importing this module
builds nothing. Servers that take ``module:attr`` (the gevent and Werkzeug runners) read
``_examples:flask_app`` or ``_examples:bottle_app``, which are built on first access
(PEP 562 module ``__getattr__``); gunicorn may call a factory with arguments instead,
``_examples:create_flask_app(WSGISSE_RETRY=1000)``.

Routes of both apps:

``GET /events``
    The app's channel (heartbeat 0.2 s, so that a gone client is noticed quickly).
``POST /publish?event=E``
    Publishes the request body (UTF-8 text) as one event; answers ``{"id": ...}``.
``GET /stats``
    ``{"subscribers": N, "pid": P}``.
``GET /echo?word=A&word=B``
    A generator view that reads the query inside the generator: one ``echo`` event per
    word, 0.1 s apart (so the generator is still running when the framework finishes the
    request), then a ``done`` event, and the stream ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import bottle
import requests
from flask import Flask, request, stream_with_context

from wsgisse import ServerSentEvent
from wsgisse.integrations.bottle import SSEPlugin
from wsgisse.integrations.flask import SSE, stream

TESTS_DIR: Final = Path(__file__).resolve().parent
EXAMPLES_DIR: Final = TESTS_DIR.parent / "examples"

#: The heartbeat of the test apps: short, so that a server notices a gone client fast.
HEARTBEAT: Final = 0.2
#: The retry of the test apps, in milliseconds.
RETRY: Final = 500
#: The pause between two ``/echo`` events.
ECHO_PAUSE: Final = 0.1

#: Response headers that PEP 3333 forbids an application to set.
HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te"}
    | {"trailers", "transfer-encoding", "upgrade"}
)


def create_flask_app(**config: Any) -> Flask:
    """The Flask test app (see the module's documentation); ``config`` updates its config."""
    app = Flask("wsgisse_flask_test")
    app.config.update(WSGISSE_HEARTBEAT=HEARTBEAT, WSGISSE_RETRY=RETRY)
    app.config.update(config)
    sse = SSE(app)

    @app.post("/publish")
    def publish() -> dict[str, Any]:
        sent = sse.publish(request.get_data(as_text=True), event=request.args.get("event"))
        return {"id": sent.id}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        return {"subscribers": sse.channel.subscriber_count, "pid": os.getpid()}

    @app.get("/echo")
    def echo() -> Any:
        @stream_with_context
        def words() -> Iterator[ServerSentEvent]:
            for word in request.args.getlist("word"):
                yield ServerSentEvent(word, event="echo")
                time.sleep(ECHO_PAUSE)
            yield ServerSentEvent("", event="done")

        return stream(words())

    return app


def create_bottle_app(**options: Any) -> Any:
    """The Bottle test app; ``options`` go to :class:`SSEPlugin`."""
    app = bottle.Bottle()
    sse = app.install(SSEPlugin(**{"heartbeat": HEARTBEAT, "retry": RETRY, **options}))

    @app.post("/publish")
    def publish() -> dict[str, Any]:
        body = bottle.request.body.read().decode("utf-8")
        sent = sse.publish(body, event=bottle.request.query.event or None)
        return {"id": sent.id}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        return {"subscribers": sse.channel.subscriber_count, "pid": os.getpid()}

    @app.get("/echo", sse=True)
    def echo() -> Iterator[ServerSentEvent]:
        for word in bottle.request.query.decode().getall("word"):
            yield ServerSentEvent(word, event="echo")
            time.sleep(ECHO_PAUSE)
        yield ServerSentEvent("", event="done")

    return app


_APPS = {"flask_app": create_flask_app, "bottle_app": create_bottle_app}


def __getattr__(name: str) -> Any:
    """Build ``flask_app`` or ``bottle_app`` on first access, for ``module:attr`` runners."""
    if name not in _APPS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = globals()[name] = _APPS[name]()
    return app


# -- talking to a served app -------------------------------------------------------------


def get_json(url: str) -> Any:
    """GET ``url`` and return its JSON body."""
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.json()


def post(url: str, data: str | dict[str, Any] = "", **kwargs: Any) -> requests.Response:
    """POST ``data`` (text, or a dict as JSON) to ``url``; fail on an error status."""
    if isinstance(data, dict):
        response = requests.post(url, json=data, timeout=10, **kwargs)
    else:
        response = requests.post(url, data=data.encode("utf-8"), timeout=10, **kwargs)
    response.raise_for_status()
    return response


def subscribers(base_url: str) -> int:
    """How many clients the served test app's channel has."""
    return int(get_json(base_url + "/stats")["subscribers"])
