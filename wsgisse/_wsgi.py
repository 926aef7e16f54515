"""The WSGI face of wsgisse: a middleware, and stream responses for views."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._channel import Channel
from ._errors import ChannelClosedError
from ._request import BadRequest, last_event_id, set_no_delay, stream_method
from ._stream import EventStream

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["SSEMiddleware", "stream_response"]


def _plain(
    start_response: StartResponse,
    status: str,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
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


def stream_response(
    environ: WSGIEnvironment,
    start_response: StartResponse,
    source: Channel | Iterable[object],
    *,
    heartbeat: float | None = 15.0,
    retry: int | None = 3000,
) -> Iterable[bytes]:
    """Answer a WSGI request with an event stream and return the body iterable.

    ``source`` is a :class:`~wsgisse.Channel` (the client is subscribed, resuming from its
    ``Last-Event-ID`` header or ``lastEventId`` query parameter) or any iterable or
    generator of events (see :class:`~wsgisse.EventStream`). Use it from a plain WSGI app
    or view::

        def app(environ, start_response):
            return wsgisse.stream_response(environ, start_response, ticks())

    A method other than GET or HEAD is answered ``405``, a malformed ``Last-Event-ID``
    ``400``, and a closed channel ``204 No Content`` (which tells a browser to stop
    reconnecting); none of them raises.
    """
    try:
        method = stream_method(environ)
        resume_from = last_event_id(environ) if isinstance(source, Channel) else None
    except BadRequest as refusal:
        return _plain(start_response, refusal.status, refusal.message, refusal.headers)
    if method == "HEAD":
        start_response(EventStream.status, list(EventStream.headers))
        return []
    if isinstance(source, Channel):
        try:
            subscription = source.subscribe(resume_from)
        except ChannelClosedError:
            start_response("204 No Content", [("Cache-Control", "no-store")])
            return []
        stream = EventStream(subscription, heartbeat=heartbeat, retry=retry)
    else:
        stream = EventStream(source, heartbeat=heartbeat, retry=retry)
    set_no_delay(environ)
    start_response(EventStream.status, list(EventStream.headers))
    return stream


class SSEMiddleware:
    """Serve a channel's event stream at ``path`` and pass every other request on.

    ::

        channel = wsgisse.Channel()
        app = wsgisse.SSEMiddleware(app, channel, path="/events")
        channel.publish("hello")  # from anywhere, any thread or greenlet

    Args:
        app: the WSGI application to wrap.
        channel: the channel to serve.
        path: the URL path of the stream (matched against ``PATH_INFO``).
        heartbeat: seconds of silence before a heartbeat comment (see
            :class:`~wsgisse.EventStream`).
        retry: the reconnection delay, in milliseconds, sent first.
    """

    def __init__(
        self,
        app: WSGIApplication,
        channel: Channel,
        path: str = "/events",
        *,
        heartbeat: float | None = 15.0,
        retry: int | None = 3000,
    ) -> None:
        self.app = app
        self.channel = channel
        self.path = path
        self.heartbeat = heartbeat
        self.retry = retry

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer a stream request, or hand the request to the wrapped app."""
        if environ.get("PATH_INFO", "") != self.path:
            return self.app(environ, start_response)
        return stream_response(
            environ, start_response, self.channel, heartbeat=self.heartbeat, retry=self.retry
        )
