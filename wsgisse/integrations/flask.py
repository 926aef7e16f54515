"""Server-sent events for Flask: an extension that serves a channel, and generator views.

::

    import time

    from flask import Flask, request, stream_with_context
    from wsgisse.integrations.flask import SSE, stream

    sse = SSE()

    def create_app():
        app = Flask(__name__)
        sse.init_app(app)  # GET /events serves the app's channel

        @app.post("/say")
        def say():
            sent = sse.publish(request.form["text"], event="said")
            return {"id": sent.id}

        @app.get("/countdown")
        def countdown():
            @stream_with_context
            def numbers():
                for n in range(int(request.args.get("from", "3")), 0, -1):
                    yield n
                    time.sleep(1)

            return stream(numbers())

        return app

The extension follows Flask's conventions: one :class:`SSE` object may serve several apps,
its state lives in ``app.extensions["wsgisse"]`` (a :class:`SSEState`: the app's
:class:`~wsgisse.Channel` and the :class:`~wsgisse.SSEApp` serving it), and it reads
these config keys, whose defaults :meth:`SSE.init_app` sets:

``WSGISSE_URL``
    The URL of the stream route, ``"/events"``; ``None`` registers no route (serve the
    channel from a view of your own with :func:`stream`).
``WSGISSE_HEARTBEAT``
    Seconds of silence before a heartbeat comment, ``15.0`` (see
    :class:`~wsgisse.EventStream` for why).
``WSGISSE_RETRY``
    The reconnection delay sent to browsers, in milliseconds, ``3000`` (about what a
    browser uses when it is told nothing).
``WSGISSE_HISTORY``
    How many events a reconnecting browser can be replayed from its ``Last-Event-ID``,
    ``1000`` (the default of :class:`~wsgisse.Channel`).

``WSGISSE_MAX_CONNECTIONS``, ``WSGISSE_MAX_CONNECTIONS_PER_CLIENT``
    Connection caps (``None``: none); see :class:`~wsgisse.SSEApp`.
``WSGISSE_MAX_LIFETIME``
    End streams after about this many seconds so that they rebalance (``None``).
``WSGISSE_WRITE_TIMEOUT``
    Seconds a write may block before a client that stopped reading is dropped, ``30.0``.

The stream route's settings are read once, by :meth:`SSE.init_app`; :func:`stream` reads
``WSGISSE_HEARTBEAT`` and ``WSGISSE_RETRY`` at each call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, request

from wsgisse import CORS, Channel, ClientFiles, ServerSentEvent, SSEApp, stream_response
from wsgisse._client import CLIENT_FILES
from wsgisse._wsgi import call_app

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from wsgisse._endpoint import Decision

__all__ = ["SSE", "SSEState", "stream"]

#: The key of the extension's state in ``app.extensions``.
EXTENSION_KEY = "wsgisse"

#: The config keys and their defaults; see the module's documentation.
CONFIG_DEFAULTS: dict[str, Any] = {
    "WSGISSE_URL": "/events",
    "WSGISSE_HEARTBEAT": 15.0,
    "WSGISSE_RETRY": 3000,
    "WSGISSE_HISTORY": 1000,
    "WSGISSE_MAX_CONNECTIONS": None,
    "WSGISSE_MAX_CONNECTIONS_PER_CLIENT": None,
    "WSGISSE_MAX_LIFETIME": None,
    "WSGISSE_WRITE_TIMEOUT": 30.0,
}

#: The endpoint name of the stream route, for ``url_for("wsgisse_events")``.
ENDPOINT = "wsgisse_events"
#: The endpoint of the browser client's files, served next to the stream route:
#: ``url_for("wsgisse_client", name="wsgisse.js")`` is ``/events/wsgisse.js``.
CLIENT_ENDPOINT = "wsgisse_client"

#: An authorization hook for Flask: called inside the request context (so it may read
#: ``flask.request``, ``flask.session``, ``flask.g``) with the channel names asked for;
#: it returns what :data:`wsgisse.Authorizer` hooks return.
FlaskAuthorizer = Callable[[tuple[str, ...]], "Decision"]


@dataclass(frozen=True)
class SSEState:
    """What the extension keeps for one app, in ``app.extensions["wsgisse"]``."""

    #: The app's channel.
    channel: Channel
    #: The endpoint serving it at ``WSGISSE_URL`` (its ``stats``, ``revoke()``).
    endpoint: SSEApp


class SSE:
    """The Flask extension: a channel per app, served at ``WSGISSE_URL``.

    Use ``SSE(app)``, or ``sse = SSE()`` and ``sse.init_app(app)`` in an app factory.
    Nothing is stored on the extension object: each app's state lives in
    ``app.extensions["wsgisse"]``, so one object may serve several apps, and
    :attr:`channel`, :meth:`publish` and :meth:`revoke` act on the app of the current
    app context.

    Args:
        app: the app to initialise now, if any.
        channel: the channel every app initialised by this object serves. By default each
            app gets a channel of its own, named after the app, keeping
            ``WSGISSE_HISTORY`` events.
        authorize: who may read the stream; see :data:`FlaskAuthorizer`.
        cors: the cross-origin policy of the stream route (see :class:`wsgisse.CORS`).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        channel: Channel | None = None,
        authorize: FlaskAuthorizer | None = None,
        cors: CORS | None = None,
    ) -> None:
        self._channel = channel
        self._authorize = authorize
        self._cors = cors
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Give ``app`` its channel and register the stream route at ``WSGISSE_URL``.

        The route answers GET (and HEAD): other methods get Flask's ``405``, so that a
        view of your own may take POST at the same URL. A malformed ``Last-Event-ID`` is
        answered ``400``, a refused client ``401``/``403``, and a closed channel ``204 No
        Content`` (which tells a browser to stop reconnecting), as by
        :class:`wsgisse.SSEApp`.

        Raises:
            RuntimeError: wsgisse is already initialised on ``app``.
            ValueError: ``WSGISSE_HISTORY`` is negative or a cap is below 1.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"wsgisse is already initialised on app {app.name!r}: call init_app once per app"
            )
        for key, default in CONFIG_DEFAULTS.items():
            app.config.setdefault(key, default)
        config = app.config
        channel = self._channel
        if channel is None:
            channel = Channel(app.name, history=config["WSGISSE_HISTORY"])
        endpoint = SSEApp(
            channel,
            heartbeat=config["WSGISSE_HEARTBEAT"],
            retry=config["WSGISSE_RETRY"],
            max_connections=config["WSGISSE_MAX_CONNECTIONS"],
            max_connections_per_client=config["WSGISSE_MAX_CONNECTIONS_PER_CLIENT"],
            max_lifetime=config["WSGISSE_MAX_LIFETIME"],
            write_timeout=config["WSGISSE_WRITE_TIMEOUT"],
            authorize=None if self._authorize is None else _in_request(self._authorize),
            cors=self._cors,
        )
        app.extensions[EXTENSION_KEY] = SSEState(channel, endpoint)
        url = config["WSGISSE_URL"]
        if url is not None:
            app.add_url_rule(url, ENDPOINT, _serve_channel, methods=["GET"])
            names = ",".join(f"'{name}'" for name in CLIENT_FILES)
            client = f"{url.rstrip('/')}/<any({names}):name>"
            app.add_url_rule(client, CLIENT_ENDPOINT, _serve_client, methods=["GET"])

    @property
    def channel(self) -> Channel:
        """The channel of the current app.

        Raises:
            RuntimeError: outside an app context, or wsgisse is not initialised on the app.
        """
        return _state().channel

    def publish(
        self,
        data: object,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
    ) -> ServerSentEvent:
        """Publish an event on the current app's channel; see :meth:`wsgisse.Channel.publish`.

        Returns:
            The event as sent, with its id.

        Raises:
            RuntimeError: outside an app context, or wsgisse is not initialised on the app.
            InvalidEventError: a field the format cannot carry (see ``Channel.publish``).
            ChannelClosedError: the channel was closed.
        """
        return _state().channel.publish(data, event=event, id=id, retry=retry)

    def revoke(self, *, user: str | None = None) -> int:
        """End the current app's streams of ``user`` (all of them if ``None``) at once.

        See :meth:`wsgisse.SSEApp.revoke`; ``authorize`` must also refuse the user now.
        """
        state = _state()
        if user is None:
            return state.endpoint.revoke(channel=state.channel.name)
        return state.endpoint.revoke(user=user)


def _in_request(
    authorize: FlaskAuthorizer,
) -> Callable[[WSGIEnvironment, tuple[str, ...]], Decision]:
    # The endpoint runs inside the stream route's view, so the request context is live.
    def hook(environ: WSGIEnvironment, channels: tuple[str, ...]) -> Decision:
        del environ
        return authorize(channels)

    return hook


def stream(
    events: Iterable[object],
    *,
    heartbeat: float | None = None,
    retry: int | None = None,
) -> Response:
    """Return a response that streams ``events`` from a view.

    ``events`` is a generator (or any iterable) of :class:`~wsgisse.ServerSentEvent`
    objects or of data for unnamed events. It runs in a worker beside the server (a
    greenlet under gevent, a thread otherwise), so it may block between events while
    heartbeats keep flowing, and it starts only once Flask has finished the request. To
    read ``request`` or ``session`` in it, wrap it in :func:`flask.stream_with_context`::

        @app.get("/ticks")
        def ticks():
            @stream_with_context
            def generate():
                for n in range(int(request.args["count"])):
                    yield ServerSentEvent(n, event="tick")
                    time.sleep(1)

            return stream(generate())

    The response is streamed as is (``direct_passthrough``): an ``after_request`` hook
    may add headers but not read the body. A method other than GET or HEAD is answered
    ``405``, as by :func:`wsgisse.stream_response`.

    Args:
        events: what to send.
        heartbeat: seconds of silence before a heartbeat comment; by default the app's
            ``WSGISSE_HEARTBEAT`` (15 s if unset).
        retry: the reconnection delay in milliseconds sent first; by default the app's
            ``WSGISSE_RETRY`` (3000 ms if unset).

    Raises:
        RuntimeError: called outside a request.
        ValueError: ``heartbeat`` is not positive.
        InvalidEventError: ``retry`` is out of range.
    """
    config = current_app.config
    if heartbeat is None:
        heartbeat = config.get("WSGISSE_HEARTBEAT", CONFIG_DEFAULTS["WSGISSE_HEARTBEAT"])
    if retry is None:
        retry = config.get("WSGISSE_RETRY", CONFIG_DEFAULTS["WSGISSE_RETRY"])

    def app(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
        return stream_response(environ, start_response, events, heartbeat=heartbeat, retry=retry)

    return _respond(app)


def _state() -> SSEState:
    """The current app's state, from ``app.extensions``."""
    state = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, SSEState):
        raise RuntimeError(
            f"wsgisse is not initialised on app {current_app.name!r}: call sse.init_app(app)"
        )
    return state


def _serve_channel() -> Response:
    """The view of the stream route: the current app's channel, resumed from Last-Event-ID."""
    return _respond(_state().endpoint)


def _serve_client(name: str) -> Response:
    """The view of the browser client's files (``/events/wsgisse.js``)."""
    return _respond(ClientFiles())


def _respond(wsgi_app: Callable[[WSGIEnvironment, Any], Iterable[bytes]]) -> Response:
    """Run a wsgisse WSGI answer for this request and carry it into a Flask response.

    The request checks (method, ``Last-Event-ID``, authorization) and the status and
    headers of every answer are wsgisse's own; carried into a Flask response, they still
    pass through ``after_request`` hooks (CORS of your own, say).
    """
    status, headers, body = call_app(wsgi_app, request.environ)
    response = current_app.response_class(
        body, status=status, headers=headers, direct_passthrough=True
    )
    if not any(name.lower() == "content-type" for name, _ in headers):
        # Flask adds its default (text/html) to a 204, which must not have one.
        response.headers.remove("Content-Type")
    close = getattr(body, "close", None)
    if close is not None:
        # An after_request hook may wrap or replace response.response (Flask-Compress
        # does): the stream must still be closed, and so unsubscribed, with the response.
        response.call_on_close(close)
    return response
