"""Server-sent events for Bottle: a plugin that serves channels and streams generator routes.

::

    import time

    import bottle
    from wsgisse.integrations.bottle import SSEPlugin

    app = bottle.Bottle()
    sse = app.install(SSEPlugin())  # GET /events serves sse.channel

    @app.post("/say")
    def say():
        sse.publish(bottle.request.forms.text, event="said")

    @app.get("/countdown", sse=True)  # what the route returns is streamed as events
    def countdown():
        for n in range(int(bottle.request.query.start or 3), 0, -1):
            yield n
            time.sleep(1)

A route opted in with ``sse=True`` returns a generator (or any iterable) of
:class:`~wsgisse.ServerSentEvent` objects or of data for unnamed events. It runs in a
worker beside the server (a greenlet under gevent, a thread otherwise), so it may block
between events while heartbeats keep flowing; ``bottle.request`` is bound to the route's
request in that worker too. Returning (or raising) a ``bottle.HTTPResponse`` instead, such
as ``bottle.HTTPError(403)``, answers the request as usual.

Several channels, Redis, and publishing from anywhere::

    sse = SSEPlugin(channels=["news", "alerts"], redis_url="redis://127.0.0.1:6379/0")
    app.install(sse)                     # GET /events?channel=news&channel=alerts

    sse.publish("hello", channel="news")          # in a route, a thread, a script
    sse.publish("for bob", channel="alerts", audience=["bob"])

The plugin holds its channels itself, so :meth:`SSEPlugin.publish` needs no request; a
process that serves nothing (a task-queue worker) makes the same plugin, with the same
``redis_url``, and publishes without installing it. See ``docs/flask-bottle.rst``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

try:
    import bottle
except ImportError as exc:
    if exc.name is not None and exc.name.split(".")[0] != "bottle":
        raise  # Bottle is installed but broken: show what it lacks
    raise ImportError(
        "wsgisse.integrations.bottle needs Bottle: pip install wsgisse[bottle]", name="bottle"
    ) from exc

from wsgisse import Channel, ClientFiles, ServerSentEvent, SSEApp, stream_response
from wsgisse._wsgi import call_app, recording_start_response

from ._channels import ChannelSet, ChannelsSpec, redis_backend

if TYPE_CHECKING:
    from wsgisse._endpoint import Decision

__all__ = ["SSEPlugin"]


class SSEPlugin:
    """A Bottle plugin (API 2): a channel served at ``path``, and ``sse=True`` routes.

    Install it with ``app.install(SSEPlugin())``; ``install`` returns the plugin, whose
    :meth:`publish` sends to every client of the stream route. The route is named
    ``"wsgisse"`` (``app.get_url("wsgisse")``) and answers GET (and HEAD); other methods
    get Bottle's ``405``. A malformed ``Last-Event-ID`` is answered ``400``, and a closed
    channel ``204 No Content`` (which tells a browser to stop reconnecting), as by
    :func:`wsgisse.stream_response`.

    Args:
        channel: the channel to serve (default: a new one, keeping ``history`` events
            for reconnecting clients). A plugin installed on several apps serves the same
            channels on each.
        channels: several channels instead (see
            :data:`wsgisse.integrations.ChannelsSpec`): names (a channel is made for
            each), a mapping of names to channels, or a rule ``name -> Channel | bool |
            None`` for dynamic channels (``True``: make it, with ``history`` and
            ``redis_url``). Clients ask with ``?channel=NAME`` (several are multiplexed
            over one stream).
        history: how many events each channel made here keeps for reconnecting clients.
        redis_url: a Redis URL: the channels made here share one
            :class:`~wsgisse.backends.redis.RedisBackend` (imported only then), so that a
            publish from any process reaches every client.
        path: the URL of the stream route; ``None`` registers no route.
        heartbeat: seconds of silence before a heartbeat comment, for the stream route
            and ``sse=True`` routes (see :class:`~wsgisse.EventStream`).
        retry: the reconnection delay in milliseconds sent to browsers first.
        authorize: who may read the stream route: called inside the request (so it may
            read ``bottle.request``) with the channel names asked for; it returns what a
            :data:`wsgisse.Authorizer` returns (``None``: 401, ``False``: 403, ``True`` or
            a user name: allowed).
        **endpoint_options: any other option of :class:`wsgisse.SSEApp` for the stream
            route (``cors``, ``max_connections``, ``max_lifetime``, ``trusted_proxies``
            behind a proxy, and the connection hooks ``on_connect`` (run inside the
            request: ``bottle.request`` is bound) and ``on_disconnect``...).

    Attributes:
        endpoint: the :class:`wsgisse.SSEApp` serving the stream route (its ``stats``,
            ``revoke()``).
        channels: the :class:`~wsgisse.integrations.ChannelSet` served.

    Raises:
        TypeError: both ``channel`` and ``channels`` given.
        ImportError: ``redis_url`` given and redis-py is not installed.
    """

    #: The plugin's name: Bottle skips a route's plugins by name (``skip=["wsgisse"]``).
    name = "wsgisse"
    #: The Bottle plugin API this plugin implements.
    api = 2

    def __init__(
        self,
        channel: Channel | None = None,
        *,
        channels: ChannelsSpec = None,
        history: int = 1000,
        redis_url: str | None = None,
        path: str | None = "/events",
        heartbeat: float | None = 15.0,
        retry: int | None = 3000,
        authorize: Callable[[tuple[str, ...]], Decision] | None = None,
        **endpoint_options: Any,
    ) -> None:
        if channel is not None and channels is not None:
            raise TypeError("give channel= or channels=, not both")
        spec = channel if channel is not None else channels
        # Ready-made channels keep their own backend: make no Redis client for nothing.
        makes_channels = not isinstance(spec, (Channel, Mapping))
        self.channels = ChannelSet(
            spec, history=history, backend=redis_backend(redis_url if makes_channels else None)
        )
        self.path = path
        self.heartbeat = heartbeat
        self.retry = retry
        hook = None if authorize is None else _in_request(authorize)
        self.endpoint = SSEApp(
            self.channels.source,
            heartbeat=heartbeat,
            retry=retry,
            authorize=hook,
            **endpoint_options,
        )

    @property
    def channel(self) -> Channel:
        """The only channel served.

        Raises:
            UnknownChannelError: several are served: use ``channels.get(name)``.
        """
        return self.channels.get()

    def setup(self, app: Any) -> None:
        """Register the stream route on ``app`` (called by ``app.install``).

        Raises:
            bottle.PluginError: ``app`` already has a wsgisse plugin.
        """
        for other in app.plugins:
            if getattr(other, "name", None) == self.name:
                raise bottle.PluginError(
                    f"a wsgisse plugin is already installed on this app ({other!r}): "
                    "install one per app, and publish through it"
                )
        if self.path is not None:
            app.route(self.path, "GET", self._serve_channel, name=self.name)
            # The browser client next to the stream: /events/wsgisse.js.
            client = self.path.rstrip("/") + r"/<name:re:wsgisse\.(?:js|global\.js|d\.ts)>"
            app.route(client, "GET", self._serve_client, name="wsgisse_client")
        # Lets the stream find the server behind Bottle's answer (the fast path): Bottle
        # answers every request through its app's wsgi().
        app.wsgi = recording_start_response(app.wsgi)

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        """Stream what ``callback`` returns if its route was declared with ``sse=True``."""
        if not route.config.get("sse"):
            return callback

        @functools.wraps(callback)
        def serve_events(*args: Any, **kwargs: Any) -> Any:
            events = callback(*args, **kwargs)
            if isinstance(events, bottle.HTTPResponse):
                return events
            stream = _with_request(events, bottle.request.environ)
            return self._respond(
                lambda environ, start_response: stream_response(
                    environ, start_response, stream, heartbeat=self.heartbeat, retry=self.retry
                )
            )

        return serve_events

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

        Needs no request: call it from a route, a thread or another process (with
        ``redis_url``). ``audience`` restricts the event to the streams of those users,
        as the ``authorize`` hook names them; see :meth:`wsgisse.Channel.publish`.

        Returns:
            The event as sent, with its id.

        Raises:
            UnknownChannelError: no channel of that name, or none named while several
                are served.
            InvalidEventError: a field the format cannot carry (see ``Channel.publish``).
            ChannelClosedError: the channel was closed.
            BackendUnavailableError: Redis could not take the event.
        """
        return self.channels.publish(
            data, channel=channel, event=event, id=id, retry=retry, audience=audience
        )

    def __repr__(self) -> str:
        return f"<SSEPlugin {self.path!r} {self.channels!r}>"

    def _serve_channel(self) -> Iterable[bytes]:
        return self._respond(self.endpoint)

    def _serve_client(self, name: str) -> Iterable[bytes]:
        return self._respond(ClientFiles())

    def _respond(self, wsgi_app: Callable[[Any, Any], Iterable[bytes]]) -> Iterable[bytes]:
        """Run a wsgisse WSGI answer and carry it into Bottle's response.

        The request checks and the status and headers are wsgisse's own; headers already
        set on ``bottle.response`` by a hook or another plugin are kept.
        """
        status, headers, body = call_app(wsgi_app, bottle.request.environ)
        bottle.response.status = status
        for name, value in headers:
            bottle.response.set_header(name, value)
        return body


def _with_request(events: Iterable[object], environ: dict[str, Any]) -> Iterator[object]:
    """Iterate ``events`` with ``bottle.request`` bound to ``environ``.

    ``bottle.request`` is thread-local (greenlet-local under gevent), and the events run
    in a worker of their own, where it would otherwise be unbound.
    """
    bottle.request.bind(environ)
    yield from events


def _in_request(
    authorize: Callable[[tuple[str, ...]], Decision],
) -> Callable[[Any, tuple[str, ...]], Decision]:
    # The endpoint runs inside the stream route's callback: bottle.request is bound.
    def hook(environ: Any, channels: tuple[str, ...]) -> Decision:
        del environ
        return authorize(channels)

    return hook
