"""The stream view: an event stream answered through Django's middleware.

The view runs the process' :class:`~wsgisse.SSEApp` on the request (method, channels,
``Last-Event-ID``, CORS, caps, and the channel manager's ``can_read`` with
``request.user``) and carries its answer into a Django response. Three things make a
stream a good citizen of a Django project:

* **No database connection is held by an open stream.** Loading the session and the
  user and answering ``can_read`` may query the database; Django closes the connection
  only at ``request_finished``, which for a stream is when it ends. So the body closes
  this thread's (or greenlet's) connections just before its first byte, after every
  middleware has seen the response (a session saved on the way out included).
* **Compression middleware passes the stream by.** ``GZipMiddleware`` compresses a
  streaming response through one ``GzipFile`` that holds small writes back, and any
  compressor would turn the stream into something an ``EventSource`` cannot read. The
  view removes ``Accept-Encoding`` from the request, so that compressors which honour
  it (Django's does) leave the response alone; the stream's ``Cache-Control:
  no-transform`` tells proxies the same.
* **The view is not wrapped in a transaction** under ``ATOMIC_REQUESTS`` (it holds
  none while it streams).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from django.db import connections, transaction
from django.http import HttpResponse, StreamingHttpResponse

from wsgisse._wsgi import call_app

from . import get_hub
from ._hub import REQUEST_KEY

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

__all__ = ["events"]


@transaction.non_atomic_requests
def events(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
    """Stream the request's channels (see :meth:`ChannelManager.channels_for_request`).

    ``kwargs`` are the URL's keywords: ``channels=[...]`` (fixed names) or ``channel``
    (one name from the path). Refusals are answered as by :class:`wsgisse.SSEApp`:
    ``400`` (bad ``Last-Event-ID``, no channel named), ``401``/``403`` (``can_read``
    refused), ``404`` (unknown channel), ``405`` (a method other than GET or HEAD),
    ``204`` (a closed channel).
    """
    hub = get_hub()
    environ = request.META
    names = hub.manager.channels_for_request(request, kwargs)
    if names is not None:
        # The URL names the channels: the client's ?channel= is ignored (as in
        # django-eventstream), and the endpoint reads the URL's names instead.
        parameter = hub.endpoint.channel_parameter
        query = [
            pair
            for pair in parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
            if pair[0] != parameter
        ]
        query += [(parameter, name) for name in names]
        environ = {**environ, "QUERY_STRING": urlencode(query)}
    environ[REQUEST_KEY] = request
    try:
        status, headers, body = call_app(hub.endpoint, environ)
    finally:
        environ.pop(REQUEST_KEY, None)
    # GZipMiddleware (and every compressor that honours Accept-Encoding) now passes the
    # response by, whatever it is.
    request.META.pop("HTTP_ACCEPT_ENCODING", None)
    code, _, reason = status.partition(" ")
    response: HttpResponseBase
    if isinstance(body, list):  # a refusal, a HEAD, a capacity farewell: all short
        response = HttpResponse(b"".join(body), status=int(code), reason=reason)
    else:
        response = StreamingHttpResponse(_Released(body), status=int(code), reason=reason)
    if not any(name.lower() == "content-type" for name, _ in headers):
        del response["Content-Type"]  # a 204 has none; Django adds text/html
    for name, value in headers:
        response[name] = value
    return response


class _Released:
    """The stream's body, which gives back the database connections before its first byte.

    The server asks for the first chunk only once the view and every middleware are done
    with the request, in the same thread (or greenlet), whose connections these are.
    ``close()`` is the stream's own (Django's response calls it when the server closes
    the response), so the client is unsubscribed as before.
    """

    def __init__(self, body: Iterable[bytes]) -> None:
        self._body = body
        self._chunks: Iterator[bytes] = iter(body)
        self._released = False

    def __iter__(self) -> _Released:
        return self

    def __next__(self) -> bytes:
        if not self._released:
            self._released = True
            for connection in connections.all(initialized_only=True):
                connection.close()
        return next(self._chunks)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
