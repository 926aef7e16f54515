"""Flask and Bottle apps serving several channels, for the real-server ergonomics tests.

``flask_app`` and ``bottle_app`` (built on first access) serve, at ``/events``:

* ``news`` and ``alerts``, fixed, and rooms ``room-*`` made on demand (a rule);
* with ``$REDIS_URL`` set, every channel made by the integration is backed by Redis
  (``WSGISSE_REDIS_URL`` / ``redis_url=``).

``?user=NAME`` names the reader (the ``authorize`` hook returns it), for audiences.
``?snapshot=1`` makes ``on_connect`` send a ``snapshot`` event (JSON: the channels and the
user) first; ``on_disconnect`` counts every stream that closes.

Routes:

``POST /publish?channel=C&data=D&audience=U``
    Publishes in the request.
``POST /publish-later?channel=C&data=D``
    Starts a native thread that publishes with no request and no app context, and
    answers once that thread has published.
``GET /stats?channel=C``
    JSON ``{"subscribers": N, "backend": "RedisBackend" | "none", "closed": [ids]}``:
    ``closed``, the connection ids ``on_disconnect`` was called with, in order.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import parse_qs

from wsgisse import Channel, Connection, ServerSentEvent

CHANNELS = ("news", "alerts")
HEARTBEAT = 0.2
_closed: list[str] = []  # on_disconnect's calls (list.append is atomic)


def on_connect(connection: Connection) -> ServerSentEvent | None:
    """The snapshot, when the stream asked for one with ``?snapshot=1``."""
    if not parse_qs(str(connection.environ.get("QUERY_STRING", ""))).get("snapshot"):
        return None
    state = {"channels": list(connection.channels), "user": connection.user}
    return ServerSentEvent(state, event="snapshot")


def on_disconnect(connection: Connection) -> None:
    """Note the stream that closed."""
    _closed.append(connection.id)


def _rule(name: str) -> Channel | bool | None:
    return True if name in CHANNELS or name.startswith("room-") else None


def _later(publish: Any, **fields: Any) -> str:
    """Publish from a fresh native thread (no request, no app context); return the id."""
    sent: list[Any] = []
    thread = threading.Thread(target=lambda: sent.append(publish(**fields)))
    thread.start()
    thread.join(10)
    return str(sent[0].id)


def create_flask_app() -> Any:
    """The Flask app (see the module's documentation)."""
    from flask import Flask, request  # noqa: PLC0415 - the Bottle server needs no Flask

    from wsgisse.integrations.flask import SSE  # noqa: PLC0415

    app = Flask("rooms")
    app.config.update(WSGISSE_HEARTBEAT=HEARTBEAT, WSGISSE_REDIS_URL=os.environ.get("REDIS_URL"))
    sse = SSE(
        app,
        channels=_rule,
        authorize=lambda names: request.args.get("user", True),
        on_connect=on_connect,
        on_disconnect=on_disconnect,
    )

    @app.post("/publish")
    def publish() -> dict[str, Any]:
        args = request.args
        audience = args.getlist("audience") or None
        sent = sse.publish(args["data"], channel=args.get("channel"), audience=audience)
        return {"id": sent.id}

    @app.post("/publish-later")
    def publish_later() -> dict[str, Any]:
        args = request.args
        return {"id": _later(sse.publish, data=args["data"], channel=args.get("channel"))}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        channel = sse.channels.get(request.args["channel"])
        return {
            "subscribers": channel.subscriber_count,
            "backend": _backend_name(sse.channels),
            "closed": list(_closed),
        }

    return app


def create_bottle_app() -> Any:
    """The Bottle app (see the module's documentation)."""
    import bottle  # noqa: PLC0415

    from wsgisse.integrations.bottle import SSEPlugin  # noqa: PLC0415

    app = bottle.Bottle()
    sse = app.install(
        SSEPlugin(
            channels=_rule,
            redis_url=os.environ.get("REDIS_URL"),
            heartbeat=HEARTBEAT,
            authorize=lambda names: bottle.request.query.get("user") or True,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
        )
    )

    @app.post("/publish")
    def publish() -> dict[str, Any]:
        query = bottle.request.query
        audience = query.getall("audience") or None
        sent = sse.publish(query["data"], channel=query.get("channel"), audience=audience)
        return {"id": sent.id}

    @app.post("/publish-later")
    def publish_later() -> dict[str, Any]:
        query = bottle.request.query
        return {"id": _later(sse.publish, data=query["data"], channel=query.get("channel"))}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        channel = sse.channels.get(bottle.request.query["channel"])
        return {
            "subscribers": channel.subscriber_count,
            "backend": _backend_name(sse.channels),
            "closed": list(_closed),
        }

    return app


def _backend_name(channels: Any) -> str:
    backend = channels.backend
    return "none" if backend is None else type(backend).__name__


_APPS = {"flask_app": create_flask_app, "bottle_app": create_bottle_app}


def __getattr__(name: str) -> Any:
    """Build ``flask_app`` or ``bottle_app`` on first access, for ``module:attr`` runners."""
    if name not in _APPS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    app = globals()[name] = _APPS[name]()
    return app
