"""SSEApp: the WSGI application that serves channels to browsers, with the door policy.

It owns what happens between a stream request and its first byte: the method, CORS,
the channels asked for, authorization, connection caps, and then the stream itself
(one channel, or several multiplexed). Everything it refuses is answered with a clear
status, never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from . import _hooks, _lifecycle
from ._channel import Channel
from ._client import ClientFiles, client_file
from ._control import farewell
from ._cors import CORS
from ._direct import FastPath, server_of
from ._errors import ChannelClosedError
from ._forwarded import TrustedProxies, trusted_proxies_from
from ._hangup import watch
from ._multiplex import MultiSubscription
from ._request import (
    ONE_REQUEST_SERVER,
    BadRequest,
    client_address,
    client_socket,
    decline_compression,
    direct_socket,
    is_multithreaded,
    is_preflight,
    last_event_id,
    origin,
    preflight_method,
    prepare_stream_socket,
    recorded_start_response,
    remember_client_address,
    requested_channels,
    served_by_mod_wsgi,
    server_software,
    serves_one_request_at_a_time,
    stream_method,
    wants_event_stream,
)
from ._stats import Stats
from ._stream import EventStream
from ._sync import current_hub, native_lock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from ._hooks import OnConnect, OnDisconnect

__all__ = ["Authorizer", "ChannelSource", "SSEApp"]

log = logging.getLogger("wsgisse")

#: What an ``authorize`` hook returns: ``True`` (allowed), a user name (allowed, and
#: tagged so that :meth:`SSEApp.revoke` can find the user's streams), ``None`` (not
#: authenticated: 401), ``False`` (not allowed: 403), or an HTTP status code to answer
#: with (``204`` tells a browser to stop reconnecting for good).
Decision = bool | str | int | None
Authorizer = Callable[["WSGIEnvironment", tuple[str, ...]], Decision]
ChannelSource = Channel | Mapping[str, Channel] | Callable[[str], Channel | None]

_STATUS = {
    204: "204 No Content",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    429: "429 Too Many Requests",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


def _plain(
    start_response: StartResponse,
    status: str,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """A short plain-text answer (no body at all for a 204)."""
    if status.startswith("204"):
        start_response(status, [("Cache-Control", "no-store"), *headers])
        return []
    body = (message + "\n").encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *headers,
        ],
    )
    return [body]


class SSEApp:
    """A WSGI application that streams channels to clients.

    Args:
        channels: one :class:`~wsgisse.Channel` (served at any URL), or several by name:
            a mapping, or a function from a name to a channel (``None`` for unknown). A
            client names the channels with ``?channel=a&channel=b``; several are
            multiplexed over one stream, with a ``Last-Event-ID`` that resumes them all.
        heartbeat: seconds of silence before a heartbeat comment (see
            :class:`~wsgisse.EventStream`).
        retry: the reconnection delay, in milliseconds, sent first.
        retry_jitter: the spread, in milliseconds, added to ``retry`` when streams are
            ended on purpose, so that clients do not all come back at once.
        max_lifetime: end each stream after about this many seconds (randomised), so
            that long-lived connections rebalance across workers; clients reconnect at
            once and resume. ``None``: streams live as long as the client.
        authorize: a hook ``authorize(environ, channel_names)`` deciding who may read;
            see :data:`Decision`. It sees cookies, headers and the query string.
        cors: the cross-origin policy; ``None`` adds no CORS header (same origin only).
        max_connections: streams this endpoint serves at once; past it a browser gets a
            200 stream carrying a long, jittered ``retry`` and is closed (an
            ``EventSource`` treats any non-200 answer as fatal and never comes back),
            and a client that does not accept ``text/event-stream`` gets ``503`` with
            ``Retry-After``.
        max_connections_per_client: the same, per client address (``REMOTE_ADDR``, or
            the address the trusted proxies forwarded).
        trusted_proxies: the proxies whose ``X-Forwarded-For`` names the client (see
            :func:`~wsgisse.client_address`); every per-client decision uses it, and
            ``authorize`` reads it as ``environ["wsgisse.client_address"]``. ``None``
            (as Werkzeug's ``ProxyFix``): the peer is the client, so behind a proxy
            every client is the proxy.
        capacity_retry: the ``retry`` (ms) told to clients refused for capacity.
        max_channels: the most channels one stream may ask for.
        channel_parameter: the query parameter that names channels.
        stats: where to count (share one :class:`~wsgisse.Stats` between endpoints to
            sum them); by default a new one, readable as :attr:`stats`.
        write_timeout: seconds a write to a client may block before the client is
            dropped (it stopped reading, or vanished without closing); enforced where the
            server exposes the socket (gunicorn, gevent, Werkzeug). 30 s lets a slow
            mobile link through; ``None``: never.
        direct_writes: under gunicorn's or gevent's own server, let a publish write the
            new event to every waiting client's socket from one loop instead of waking
            each stream's greenlet (the fast path; see ``_direct.py``). Under gunicorn's
            gevent worker and gevent's own server such a stream also takes its
            connection over from the server, whose handler greenlet ends: an idle
            stream costs about 4 KiB instead of 19, and no longer counts in gunicorn's
            ``--worker-connections`` (``_released.py``).
            ``False``: always the ordinary path, every stream in the server's hands.
        on_connect: ``on_connect(connection)``, called once per admitted stream, after
            the client is subscribed and before its first byte (see
            :class:`~wsgisse.Connection`). It may return a snapshot, a
            :class:`~wsgisse.ServerSentEvent` without id (or a list of them), sent right
            after the preamble and before any replayed or live event. If it raises, the
            stream is refused with ``500`` and the error is logged (a browser's
            ``EventSource`` does not retry a 500: the page sees ``error`` and
            ``readyState`` CLOSED), and ``on_disconnect`` is not called.
        on_disconnect: ``on_disconnect(connection)``, called exactly once when a stream
            that ``on_connect`` admitted closes, whatever ended it (the client left, a
            failed write, :func:`~wsgisse.shutdown`, revoke, lifetime), on the thread
            that closed it. An exception is logged and never stops the cleanup.

    Raises:
        ValueError: a limit below 1.
    """

    def __init__(  # noqa: PLR0913 - every option is keyword-only and named at each call
        self,
        channels: ChannelSource,
        *,
        heartbeat: float | None = 15.0,
        retry: int | None = 3000,
        retry_jitter: int = 3000,
        max_lifetime: float | None = None,
        authorize: Authorizer | None = None,
        cors: CORS | None = None,
        max_connections: int | None = None,
        max_connections_per_client: int | None = None,
        capacity_retry: int = 30_000,
        max_channels: int = 16,
        channel_parameter: str = "channel",
        stats: Stats | None = None,
        write_timeout: float | None = 30.0,
        direct_writes: bool = True,
        on_connect: OnConnect | None = None,
        on_disconnect: OnDisconnect | None = None,
        trusted_proxies: TrustedProxies | str | Iterable[str] | None = None,
    ) -> None:
        for name, limit in (
            ("max_connections", max_connections),
            ("max_connections_per_client", max_connections_per_client),
            ("max_channels", max_channels),
        ):
            if limit is not None and limit < 1:
                raise ValueError(f"{name} must be at least 1, not {limit}")
        self._channels = channels
        self.heartbeat = heartbeat
        self.retry = retry
        self.retry_jitter = retry_jitter
        self.max_lifetime = max_lifetime
        self.authorize = authorize
        self.cors = cors
        self.max_connections = max_connections
        self.max_connections_per_client = max_connections_per_client
        self.capacity_retry = capacity_retry
        self.max_channels = max_channels
        self.channel_parameter = channel_parameter
        self.stats = Stats() if stats is None else stats
        self.write_timeout = write_timeout
        self.direct_writes = direct_writes
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        # The connections that on_disconnect will be told of (only kept when it is set).
        self._connections: dict[EventStream, _hooks.Connection] = {}
        self.trusted_proxies = trusted_proxies_from(trusted_proxies)
        if isinstance(channels, Channel):
            self.stats.track_channel(channels)
        elif isinstance(channels, Mapping):
            for channel in channels.values():
                self.stats.track_channel(channel)
        self._lock = native_lock()
        self._live: dict[EventStream, tuple[str | None, tuple[Channel, ...], str]] = {}
        # What stops watching each live stream's socket for a hang-up (see _hangup).
        self._unwatch: dict[EventStream, Callable[[], None]] = {}
        self._per_client: dict[str, int] = {}
        self._checked_server = False
        self._refused_server = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one stream request (or its CORS preflight)."""
        if client_file(environ) is not None:
            # .../wsgisse.js: the browser client, served next to the stream (_client.py).
            return ClientFiles()(environ, start_response)
        cors_headers: list[tuple[str, str]] = []
        try:
            request_origin = origin(environ)
            if is_preflight(environ):
                return self._preflight(environ, start_response, request_origin)
            if self.cors is not None:
                allowed = self.cors.response_headers(request_origin)
                if allowed is None:
                    raise BadRequest(
                        _STATUS[403], "this origin may not read the stream", reason="origin"
                    )
                cors_headers = allowed
            return self._serve(environ, start_response, cors_headers)
        except BadRequest as refusal:
            self.stats.refused(refusal.reason)
            message = "" if refusal.status.startswith("204") else refusal.message
            return _plain(
                start_response, refusal.status, message, [*refusal.headers, *cors_headers]
            )

    def _serve(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        cors_headers: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        method = stream_method(environ)
        names = requested_channels(environ, self.channel_parameter, self.max_channels)
        resume_from = last_event_id(environ)
        channels = self._resolve(names)
        address = client_address(environ, self.trusted_proxies)
        remember_client_address(environ, address)
        authorizing = time.monotonic()
        user = self._authorized_user(environ, channels)
        if method == "HEAD":
            start_response(EventStream.status, [*EventStream.headers, *cors_headers])
            return []
        self._check_server(environ)
        if not self._admit(address):
            return self._refuse_for_capacity(environ, start_response, cors_headers)
        try:
            source = (
                channels[0].subscribe(resume_from, user=user)
                if len(channels) == 1
                else MultiSubscription(channels, resume_from, user)
            )
        except ChannelClosedError:
            self._release(address)
            raise BadRequest(_STATUS[204], "", reason="closed") from None
        connection, prelude = None, b""
        if self.on_connect is not None or self.on_disconnect is not None:
            names = tuple(channel.name for channel in channels)
            connection = _hooks.Connection(environ, names, user, address, resume_from)
            snapshot = _hooks.call_on_connect(self.on_connect, connection)
            if snapshot is None:  # The hook failed, and said so in the log.
                source.close()
                self._release(address)
                raise BadRequest(_STATUS[500], "the stream could not start", reason="error")
            prelude = snapshot
        stream = EventStream(
            source,
            fast_path=self._fast_path(environ, start_response),
            heartbeat=self.heartbeat,
            retry=self.retry,
            retry_jitter=self.retry_jitter,
            max_lifetime=self.max_lifetime,
            on_close=self._stream_closed,
            prelude=prelude,
        )
        with self._lock:
            self._live[stream] = (user, tuple(channels), address)
            if connection is not None and self.on_disconnect is not None:
                self._connections[stream] = connection
        _lifecycle.tag(stream, user, tuple(channels), authorizing)
        self.stats.opened(stream)
        sock = client_socket(environ)
        if sock is not None:
            unwatch = watch(sock, lambda: self._hung_up(stream))
            with self._lock:
                self._unwatch[stream] = unwatch
        prepare_stream_socket(environ, self.write_timeout)
        decline_compression(environ)
        start_response(EventStream.status, [*EventStream.headers, *cors_headers])
        return stream

    def _fast_path(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> FastPath | None:
        """What the stream needs to let the publish loop write to its socket, if anything.

        Under a framework integration the endpoint is answered through the framework
        (``call_app``), and the server's own ``start_response`` is the one the integration
        recorded at the framework's entry. Whether the bytes then reach the server
        unchanged is proven by the stream itself, once its first bytes are out.
        """
        sock = direct_socket(environ) if self.direct_writes else None
        if sock is None:
            return None
        server = server_of(start_response) or server_of(recorded_start_response(environ))
        return None if server is None else FastPath(sock, server)

    def _authorized_user(self, environ: WSGIEnvironment, channels: list[Channel]) -> str | None:
        """The user the ``authorize`` hook admitted (``None``: anonymous or no hook).

        Raises:
            BadRequest: the hook refused (401, 403, or the status it returned).
        """
        if self.authorize is None:
            return None
        decision = self.authorize(environ, tuple(channel.name for channel in channels))
        if decision is True:
            return None
        if isinstance(decision, str):
            return decision
        code = 401 if decision is None else 403 if decision is False else int(decision)
        reason = {401: "unauthorized", 204: "stopped"}.get(code, "forbidden")
        raise BadRequest(_STATUS.get(code, f"{code} Refused"), "access refused", reason=reason)

    def revoke(self, *, user: str | None = None, channel: str | None = None) -> int:
        """End the live streams of ``user`` and/or of ``channel``, here and fleet-wide.

        Each gets a :data:`~wsgisse.END_EVENT` with reason ``"revoked"`` (a page should
        close its ``EventSource`` on it) and is closed; the ``authorize`` hook must also
        refuse the client from now on, or it will reconnect. The streams of this
        endpoint end at once. When the channels' backend is shared (it has a
        ``revoke`` method, as ``RedisBackend`` does) the revocation is also sent through
        it, and every process using it ends its matching streams (the Redis backend:
        within about a second, and none receives an event published after this call
        returns). Returns how many streams this endpoint ended.

        Raises:
            ValueError: neither ``user`` nor ``channel`` given.
            BackendUnavailableError: a shared backend could not carry the revocation to
                the other processes (the streams of this endpoint are ended anyway).
        """
        if user is None and channel is None:
            raise ValueError("revoke needs a user, a channel, or both")
        with self._lock:
            chosen = [
                stream
                for stream, (stream_user, channels, _) in self._live.items()
                if (user is None or stream_user == user)
                and (channel is None or any(c.name == channel for c in channels))
            ]
            live_channels = list({c: None for _, chs, _ in self._live.values() for c in chs})
        for stream in chosen:
            stream.end("revoked")
        for backend_revoke in self._shared_revokers(channel, live_channels):
            backend_revoke(user=user, channel=channel)
        return len(chosen)

    def _shared_revokers(
        self, name: str | None, live_channels: list[Channel]
    ) -> list[Callable[..., object]]:
        """The ``revoke`` of each distinct shared backend of the channels this serves.

        A function as channel source names its channels only when asked: without a
        channel name, the backends reached are those of the channels served now.
        """
        source = self._channels
        known: list[Channel | None] = list(live_channels)
        if isinstance(source, Channel):
            known.append(source)
        elif isinstance(source, Mapping):
            known.extend(source.values())
        elif name is not None:
            known.append(source(name))
        revokers: dict[int, Callable[..., object]] = {}
        for channel in known:
            if channel is None:
                continue
            backend = channel.backend
            revoke = getattr(backend, "revoke", None)
            if callable(revoke):
                revokers.setdefault(id(backend), revoke)
        return list(revokers.values())

    @property
    def connected(self) -> int:
        """How many streams this endpoint serves now."""
        with self._lock:
            return len(self._live)

    def _resolve(self, names: Sequence[str]) -> list[Channel]:
        source = self._channels
        if isinstance(source, Channel):
            if names and names != (source.name,):
                raise BadRequest(_STATUS[404], f"no channel {names[0]!r} here")
            return [source]
        if not names:
            raise BadRequest(
                _STATUS[400], f"name a channel: ?{self.channel_parameter}=NAME (several allowed)"
            )
        found: list[Channel] = []
        for name in names:
            channel = source.get(name) if isinstance(source, Mapping) else source(name)
            if channel is None:
                raise BadRequest(_STATUS[404], f"no channel {name!r} here")
            if not isinstance(source, Mapping):
                self.stats.track_channel(channel)
            found.append(channel)
        return found

    def _admit(self, address: str) -> bool:
        """Take a connection slot for ``address``, if one is free."""
        process_limit = _lifecycle.stream_limit()
        with self._lock:
            if (
                (self.max_connections is not None and len(self._live) >= self.max_connections)
                or (process_limit is not None and _lifecycle.live_streams() >= process_limit)
                or (
                    self.max_connections_per_client is not None
                    and self._per_client.get(address, 0) >= self.max_connections_per_client
                )
            ):
                return False
            self._per_client[address] = self._per_client.get(address, 0) + 1
            return True

    def _refuse_for_capacity(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        cors_headers: list[tuple[str, str]],
    ) -> list[bytes]:
        """Tell a full server's client to come back later, in words it will act on.

        An ``EventSource`` gives up for good on any status but 200, so a browser gets a
        200 stream holding only a long, jittered ``retry`` and is closed: it comes back
        by itself. A client that does not ask for ``text/event-stream`` gets ``503``.
        """
        seconds = str(max(1, self.capacity_retry // 1000))
        if not wants_event_stream(environ):
            raise BadRequest(
                _STATUS[503],
                f"too many event streams; retry in {seconds} s",
                [("Retry-After", seconds)],
                reason="capacity",
            )
        self.stats.refused("capacity")
        start_response(EventStream.status, [*EventStream.headers, *cors_headers])
        return [farewell("capacity", self.capacity_retry, self.capacity_retry)]

    def _release(self, address: str) -> None:
        with self._lock:
            left = self._per_client.get(address, 0) - 1
            if left > 0:
                self._per_client[address] = left
            else:
                self._per_client.pop(address, None)

    def _hung_up(self, stream: EventStream) -> None:
        """The client left (seen by the hang-up watch): free its slot now, not at a write."""
        self.stats.hung_up()
        stream.end("gone")

    def _stream_closed(self, stream: EventStream) -> None:
        with self._lock:
            entry = self._live.pop(stream, None)
            unwatch = self._unwatch.pop(stream, None)
        if unwatch is not None:
            unwatch()
        if entry is not None:
            self._release(entry[2])
        self.stats.closed(stream)
        if self.on_disconnect is not None:
            with self._lock:
                connection = self._connections.pop(stream, None)
            if connection is not None:
                _hooks.run_on_disconnect(self.on_disconnect, connection)

    def _preflight(
        self, environ: WSGIEnvironment, start_response: StartResponse, request_origin: str | None
    ) -> list[bytes]:
        method = preflight_method(environ)
        headers = None if self.cors is None else self.cors.preflight_headers(request_origin, method)
        if headers is None:
            return _plain(start_response, _STATUS[403], "preflight refused")
        start_response("204 No Content", headers)
        return []

    def _check_server(self, environ: WSGIEnvironment) -> None:
        """Refuse a one-request server; once: warn about gunicorn's sync worker, chain SIGTERM.

        Raises:
            BadRequest: 500 naming the fix, on a server that serves one request at a time
                (logged once per endpoint): a stream there would freeze the whole site.
        """
        if serves_one_request_at_a_time(environ, in_gevent=current_hub() is not None):
            if not self._refused_server:
                self._refused_server = True
                log.error("%s", ONE_REQUEST_SERVER)
            raise BadRequest(_STATUS[500], ONE_REQUEST_SERVER, reason="server")
        if self._checked_server:
            return
        self._checked_server = True
        if served_by_mod_wsgi(environ):
            if not _lifecycle.adapted_to("mod_wsgi"):
                log.warning(
                    "wsgisse: under mod_wsgi, call wsgisse.integrations.mod_wsgi.setup() in "
                    "your WSGI script file, so that streams are capped below the daemon's "
                    "threads and end with a farewell when Apache stops or reloads"
                )
            return
        if not server_software(environ).startswith("gunicorn"):
            return
        if current_hub() is None and not is_multithreaded(environ):
            log.error(
                "wsgisse: gunicorn's sync worker serves one request at a time per process, "
                "so each event stream pins a whole worker. Run gunicorn with -k gevent "
                "(pip install gevent) or -k gthread --threads N."
            )
        # In a gevent worker requests run on the main thread, which may chain handlers;
        # a gthread worker needs wsgisse.integrations.gunicorn's hook instead.
        _lifecycle.chain_shutdown_signals()
