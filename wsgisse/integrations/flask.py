"""Server-sent events for Flask: an extension that serves channels, and generator views.

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

``WSGISSE_REDIS_URL``
    A Redis URL (``None``): the channels the extension makes for the app share one
    :class:`~wsgisse.backends.redis.RedisBackend`, so that a publish from any worker,
    host or task-queue process reaches every client. ``wsgisse.backends.redis`` is
    imported only when this is set. Channels you pass in ready-made keep their own
    backend.
``WSGISSE_MAX_CONNECTIONS``, ``WSGISSE_MAX_CONNECTIONS_PER_CLIENT``
    Connection caps (``None``: none); see :class:`~wsgisse.SSEApp`.
``WSGISSE_MAX_LIFETIME``
    End streams after about this many seconds so that they rebalance (``None``).
``WSGISSE_WRITE_TIMEOUT``
    Seconds a write may block before a client that stopped reading is dropped, ``30.0``.
``WSGISSE_TRUSTED_PROXIES``
    The proxies whose ``X-Forwarded-For`` names the client (``"127.0.0.1,::1"``, a list,
    or a :class:`~wsgisse.TrustedProxies`); ``None``, the default, believes none. See
    ``trusted_proxies`` of :class:`~wsgisse.SSEApp`.

The stream route's settings are read once, by :meth:`SSE.init_app`; :func:`stream` reads
``WSGISSE_HEARTBEAT`` and ``WSGISSE_RETRY`` at each call.

Several channels, and publishing from anywhere::

    sse = SSE(channels=["news", "alerts"])   # GET /events?channel=news&channel=alerts

    sse.publish("hello", channel="news")                 # in a view, or anywhere
    sse.publish("for bob", channel="alerts", audience=["bob"])

A :class:`SSE` object remembers the channels of the last app it initialised, so
:meth:`SSE.publish` works outside any application context (a thread, a task-queue
worker that built the app, a script) exactly as in a view; inside an app context it
always acts on the current app. A process that serves nothing (a worker that never
builds the app) calls :meth:`SSE.init_publisher` with the app's config, and publishes
through Redis. See ``docs/flask-bottle.rst``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:
    from flask import Flask, Response, current_app, has_app_context, request
except ImportError as exc:
    if exc.name is not None and exc.name.split(".")[0] != "flask":
        raise  # Flask is installed but broken: show what it lacks
    raise ImportError(
        "wsgisse.integrations.flask needs Flask: pip install wsgisse[flask]", name="flask"
    ) from exc

from wsgisse import (
    CORS,
    Channel,
    ClientFiles,
    Connection,
    ServerSentEvent,
    SSEApp,
    stream_response,
)
from wsgisse._client import CLIENT_FILES
from wsgisse._wsgi import call_app, recording_start_response

from ._channels import ChannelSet, ChannelsSpec, redis_backend

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from wsgisse._endpoint import Decision
    from wsgisse._hooks import OnConnect, OnDisconnect

__all__ = ["SSE", "SSEState", "stream"]

log = logging.getLogger("wsgisse")

#: The key of the extension's state in ``app.extensions``.
EXTENSION_KEY = "wsgisse"

#: The config keys and their defaults; see the module's documentation.
CONFIG_DEFAULTS: dict[str, Any] = {
    "WSGISSE_URL": "/events",
    "WSGISSE_HEARTBEAT": 15.0,
    "WSGISSE_RETRY": 3000,
    "WSGISSE_HISTORY": 1000,
    "WSGISSE_REDIS_URL": None,
    "WSGISSE_MAX_CONNECTIONS": None,
    "WSGISSE_MAX_CONNECTIONS_PER_CLIENT": None,
    "WSGISSE_MAX_LIFETIME": None,
    "WSGISSE_WRITE_TIMEOUT": 30.0,
    "WSGISSE_TRUSTED_PROXIES": None,
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

    #: The app's channels, by name (``channels.get(name)``, ``channels.publish(...)``).
    channels: ChannelSet
    #: The endpoint serving them at ``WSGISSE_URL`` (its ``stats``, ``revoke()``).
    endpoint: SSEApp

    @property
    def channel(self) -> Channel:
        """The app's only channel.

        Raises:
            UnknownChannelError: the app serves several: use ``channels.get(name)``.
        """
        return self.channels.get()


class SSE:
    """The Flask extension: an app's channels, served at ``WSGISSE_URL``.

    Use ``SSE(app)``, or ``sse = SSE()`` and ``sse.init_app(app)`` in an app factory.

    Where the state lives, and why publishing needs no app context: each app's state
    (an :class:`SSEState`) lives in ``app.extensions["wsgisse"]``, and the app itself is
    never stored on the extension, as Flask asks, so that one object may serve several
    apps. Inside an app context, :attr:`channel`, :attr:`channels`, :meth:`publish` and
    :meth:`revoke` act on the current app. Outside one (a thread, a task-queue worker, a
    script), they act on the state of the *last* app this object initialised, or of
    :meth:`init_publisher`: the object holds that state (its channels and endpoint, not
    the app), as Flask-SocketIO's ``SocketIO(message_queue=...).emit()`` needs no
    context either. With one object initialised on several apps of one process, enter
    the app's context (``with app.app_context():``) to choose.

    Args:
        app: the app to initialise now, if any.
        channel: the channel every app initialised by this object serves (the older
            spelling of ``channels=`` with one channel).
        channels: the channels each app serves (see
            :data:`wsgisse.integrations.ChannelsSpec`): ``None`` (one
            channel per app, named after it, served at ``WSGISSE_URL`` with no
            ``?channel=``), channel names (each app gets a channel per name; clients ask
            with ``?channel=NAME``, several multiplexed over one stream), a mapping of
            names to channels shared by every app, or a rule ``name -> Channel | bool |
            None`` for dynamic channels (``True``: make it with the app's settings).
            Channels made here keep ``WSGISSE_HISTORY`` events and use
            ``WSGISSE_REDIS_URL``.
        authorize: who may read the stream; see :data:`FlaskAuthorizer`.
        cors: the cross-origin policy of the stream route (see :class:`wsgisse.CORS`).
        on_connect: ``on_connect(connection)``, run inside the stream request's context
            once the client is subscribed; it may return a snapshot event sent before
            any replayed or live event (see :class:`wsgisse.SSEApp`).
        on_disconnect: ``on_disconnect(connection)``, run once when the stream closes,
            inside an app context of its app (the request is over by then).

    Raises:
        TypeError: both ``channel`` and ``channels`` given.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        channel: Channel | None = None,
        channels: ChannelsSpec = None,
        authorize: FlaskAuthorizer | None = None,
        cors: CORS | None = None,
        on_connect: OnConnect | None = None,
        on_disconnect: OnDisconnect | None = None,
    ) -> None:
        if channel is not None and channels is not None:
            raise TypeError("give channel= or channels=, not both")
        self._spec: ChannelsSpec = channel if channel is not None else channels
        self._authorize = authorize
        self._cors = cors
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        # What publish() uses outside an app context: see the class documentation.
        self._outside: ChannelSet | None = None
        self._outside_endpoint: SSEApp | None = None
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
            ImportError: ``WSGISSE_REDIS_URL`` is set and redis-py is not installed.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"wsgisse is already initialised on app {app.name!r}: call init_app once per app"
            )
        for key, default in CONFIG_DEFAULTS.items():
            app.config.setdefault(key, default)
        config = app.config
        channels = self._channel_set(config, app.name)
        on_disconnect = self._on_disconnect
        endpoint = SSEApp(
            channels.source,
            heartbeat=config["WSGISSE_HEARTBEAT"],
            retry=config["WSGISSE_RETRY"],
            max_connections=config["WSGISSE_MAX_CONNECTIONS"],
            max_connections_per_client=config["WSGISSE_MAX_CONNECTIONS_PER_CLIENT"],
            max_lifetime=config["WSGISSE_MAX_LIFETIME"],
            write_timeout=config["WSGISSE_WRITE_TIMEOUT"],
            trusted_proxies=config["WSGISSE_TRUSTED_PROXIES"],
            authorize=None if self._authorize is None else _in_request(self._authorize),
            cors=self._cors,
            on_connect=self._on_connect,
            on_disconnect=None if on_disconnect is None else _in_app(app, on_disconnect),
        )
        app.extensions[EXTENSION_KEY] = SSEState(channels, endpoint)
        self._outside, self._outside_endpoint = channels, endpoint
        # Lets the stream find the server behind Flask's answer (the fast path).
        app.wsgi_app = recording_start_response(app.wsgi_app)  # type: ignore[method-assign,assignment]
        url = config["WSGISSE_URL"]
        if url is not None:
            app.add_url_rule(url, ENDPOINT, _serve_channel, methods=["GET"])
            names = ",".join(f"'{name}'" for name in CLIENT_FILES)
            client = f"{url.rstrip('/')}/<any({names}):name>"
            app.add_url_rule(client, CLIENT_ENDPOINT, _serve_client, methods=["GET"])

    def init_publisher(
        self, config: Mapping[str, Any] | None = None, *, app_name: str | None = None
    ) -> ChannelSet:
        """Publish from a process that serves no app: a task-queue worker, a script.

        Makes the channels from ``config`` (the app's ``WSGISSE_*`` keys; ``app.config``
        or a plain mapping, with the defaults of :meth:`init_app`) exactly as
        :meth:`init_app` would, without an app, so that :meth:`publish` here is the very
        call a view makes. Set ``WSGISSE_REDIS_URL``: without a shared backend the events
        reach no other process, and a warning says so. Returns the channels.

        Args:
            config: the ``WSGISSE_*`` settings.
            app_name: the web app's ``name``, which names its channel (and so its Redis
                stream) when the extension was given no ``channels``; needed then.

        Raises:
            TypeError: ``app_name`` is needed and missing.
            ImportError: ``WSGISSE_REDIS_URL`` is set and redis-py is not installed.
        """
        if self._spec is None and app_name is None:
            raise TypeError(
                "the app's channel is named after the app: "
                "init_publisher(config, app_name=app.name) (or give the extension channels=)"
            )
        merged = {**CONFIG_DEFAULTS, **(config or {})}
        if merged["WSGISSE_REDIS_URL"] is None and not isinstance(self._spec, (Channel, Mapping)):
            log.warning(
                "wsgisse: init_publisher without WSGISSE_REDIS_URL: events published here "
                "reach only this process' clients"
            )
        self._outside = self._channel_set(merged, app_name or "default")
        self._outside_endpoint = None
        return self._outside

    def _channel_set(self, config: Mapping[str, Any], app_name: str) -> ChannelSet:
        # Ready-made channels keep their own backend: make no Redis client for nothing.
        makes_channels = not isinstance(self._spec, (Channel, Mapping))
        url = config["WSGISSE_REDIS_URL"] if makes_channels else None
        return ChannelSet(
            self._spec,
            default_name=app_name,
            history=config["WSGISSE_HISTORY"],
            backend=redis_backend(url),
        )

    @property
    def channels(self) -> ChannelSet:
        """The channels of the current app (outside an app context: see the class).

        Raises:
            RuntimeError: wsgisse is not initialised on the current app, or (outside an
                app context) on any app and no :meth:`init_publisher` was called.
        """
        if has_app_context():
            return _state().channels
        if self._outside is None:
            raise RuntimeError(
                "wsgisse: outside an application context this SSE object publishes to the "
                "last app it initialised, and it initialised none: call sse.init_app(app), "
                "or sse.init_publisher(config) in a process that serves no app"
            )
        return self._outside

    @property
    def channel(self) -> Channel:
        """The only channel of the current app (outside an app context: see the class).

        Raises:
            RuntimeError: as :attr:`channels`.
            UnknownChannelError: the app serves several: use ``channels.get(name)``.
        """
        return self.channels.get()

    def publish(
        self,
        data: object,
        *,
        channel: str | None = None,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        audience: Iterable[str] | None = None,
    ) -> ServerSentEvent:
        """Publish an event on the channel called ``channel`` (``None``: the only one).

        Works with or without an app context (see the class). ``audience`` restricts the
        event to the streams of those users, as the ``authorize`` hook names them; see
        :meth:`wsgisse.Channel.publish` for the other fields.

        Returns:
            The event as sent, with its id.

        Raises:
            RuntimeError: as :attr:`channels`.
            UnknownChannelError: no channel of that name, or none named while several
                are served.
            InvalidEventError: a field the format cannot carry (see ``Channel.publish``).
            ChannelClosedError: the channel was closed.
            BackendUnavailableError: Redis could not take the event.
        """
        return self.channels.publish(
            data, channel=channel, event=event, id=id, retry=retry, audience=audience
        )

    def revoke(self, *, user: str | None = None, channel: str | None = None) -> int:
        """End the current app's streams of ``user`` and/or ``channel`` at once.

        With neither, every stream of the app's only channel. Outside an app context it
        acts on the last app initialised (see the class). See
        :meth:`wsgisse.SSEApp.revoke`; ``authorize`` must also refuse the user now.

        Raises:
            RuntimeError: no app to act on (:meth:`init_publisher` serves no stream).
        """
        endpoint: SSEApp | None
        if has_app_context():
            state = _state()
            channels, endpoint = state.channels, state.endpoint
        else:
            channels, endpoint = self.channels, self._outside_endpoint
        if endpoint is None:
            raise RuntimeError("wsgisse: this process serves no stream to revoke")
        if user is None and channel is None:
            channel = channels.get().name
        return endpoint.revoke(user=user, channel=channel)


def _in_app(app: Flask, hook: OnDisconnect) -> Callable[[Connection], object]:
    # A stream closes after its request: give the hook its app's context back.
    def in_app(connection: Connection) -> object:
        with app.app_context():
            return hook(connection)

    return in_app


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
