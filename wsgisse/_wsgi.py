"""The WSGI face of wsgisse: a middleware, and stream responses for views."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._channel import Channel
from ._client import client_file
from ._endpoint import SSEApp, _plain
from ._request import BadRequest, path, record_start_response, set_no_delay, stream_method
from ._stream import EventStream

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ._endpoint import ChannelSource

__all__ = ["SSEMiddleware", "call_app", "recording_start_response", "stream_response"]


def call_app(
    app: WSGIApplication, environ: WSGIEnvironment
) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
    """Call a wsgisse WSGI answer and return its status, headers and body.

    For the framework integrations, which carry the answer into their own response
    objects so that the framework's hooks still apply.
    """
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        started.append((status, headers))
        return _no_write

    body = app(environ, start_response)
    status, headers = started[-1]
    return status, headers, body


def recording_start_response(app: WSGIApplication) -> WSGIApplication:
    """``app``, noting for each request the ``start_response`` it was called with.

    The integrations wrap their framework's WSGI entry point with it: the endpoint, which
    the framework answers through :func:`call_app`, can then find the server behind the
    response, and let the publish loop write to the socket once the stream proves that
    the server carries its bytes unchanged (``_direct.FastPath``). A layer that wraps the
    framework app from outside and rewrites ``start_response`` turns that off.
    """

    def recorded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        record_start_response(environ, start_response)
        return app(environ, start_response)

    return recorded


def _no_write(data: bytes) -> object:
    # wsgisse answers never use PEP 3333's write(); a response's body is its iterable.
    raise RuntimeError("wsgisse responses have no write() callable")


def stream_response(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    source: Channel | Iterable[object],
    *,
    heartbeat: float | None = 15.0,
    retry: int | None = 3000,
    max_lifetime: float | None = None,
) -> Iterable[bytes]:
    """Answer a WSGI request with an event stream and return the body iterable.

    ``source`` is a :class:`~wsgisse.Channel` (the client is subscribed, resuming from its
    ``Last-Event-ID`` header or ``lastEventId`` query parameter; see :class:`SSEApp` for
    every option of a channel endpoint) or any iterable or generator of events (see
    :class:`~wsgisse.EventStream`). From a plain WSGI app or view::

        def app(environ, start_response):
            return wsgisse.stream_response(environ, start_response, ticks())

    A method other than GET or HEAD is answered ``405``, a malformed ``Last-Event-ID``
    ``400``, and a closed channel ``204 No Content`` (which tells a browser to stop
    reconnecting); none of them raises.
    """
    if isinstance(source, Channel):
        app = SSEApp(source, heartbeat=heartbeat, retry=retry, max_lifetime=max_lifetime)
        return app(environ, start_response)
    try:
        method = stream_method(environ)
    except BadRequest as refusal:
        return _plain(start_response, refusal.status, refusal.message, refusal.headers)
    if method == "HEAD":
        start_response(EventStream.status, list(EventStream.headers))
        return []
    stream = EventStream(source, heartbeat=heartbeat, retry=retry, max_lifetime=max_lifetime)
    set_no_delay(environ)
    start_response(EventStream.status, list(EventStream.headers))
    return stream


class SSEMiddleware:
    """Serve channels' event streams at ``path`` and pass every other request on.

    ::

        channel = wsgisse.Channel()
        app = wsgisse.SSEMiddleware(app, channel, path="/events")
        channel.publish("hello")  # from anywhere, any thread or greenlet

    Args:
        app: the WSGI application to wrap.
        channels: a channel, or channels by name (see :class:`SSEApp`).
        path: the URL path of the stream (matched against ``PATH_INFO``).
        **options: every option of :class:`SSEApp` (heartbeat, retry, authorize, cors,
            max_connections, ...).

    The browser client is served next to the stream: ``path + "/wsgisse.js"`` (and
    ``/wsgisse.global.js``, ``/wsgisse.d.ts``; see :class:`~wsgisse.ClientFiles`).

    Attributes:
        endpoint: the :class:`SSEApp` serving ``path`` (its ``stats``, ``revoke()``).
    """

    def __init__(
        self, app: WSGIApplication, channels: ChannelSource, path: str = "/events", **options: Any
    ) -> None:
        self.app = app
        self.path = path
        self.endpoint = SSEApp(channels, **options)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a stream request, or hand the request to the wrapped app."""
        where = path(environ)
        if where == self.path:
            return self.endpoint(environ, start_response)
        name = client_file(environ)
        if name is not None and where == self.path.rstrip("/") + "/" + name:
            return self.endpoint(environ, start_response)  # It serves the client's files.
        return self.app(environ, start_response)
