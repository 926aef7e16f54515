"""wsgisse: Server-Sent Events for WSGI applications.

Real-time push for Flask, Bottle and plain WSGI apps served by gunicorn with gevent
workers, gevent's WSGIServer or Werkzeug's threaded server, without an async rewrite::

    import wsgisse

    channel = wsgisse.Channel()
    app = wsgisse.SSEMiddleware(app, channel, path="/events")
    channel.publish({"text": "hello"}, event="greeting")   # from any thread or greenlet

The framework integrations (``wsgisse.integrations.flask``, ``wsgisse.integrations.bottle``)
and the Redis backend (``wsgisse.backends.redis``) are imported on their own, so that
``import wsgisse`` needs nothing beyond the standard library.
"""

from __future__ import annotations

from ._backend import Backend, MemoryBackend
from ._channel import Channel, Subscription
from ._client import ClientFiles, client_source
from ._control import END_EVENT, HISTORY_LOST_EVENT
from ._cors import CORS
from ._endpoint import Authorizer, SSEApp
from ._errors import (
    BackendUnavailableError,
    ChannelClosedError,
    HistoryLostError,
    InvalidEventError,
    SubscriptionClosedError,
    UnknownChannelError,
    UnsafeConcurrencyError,
    WsgisseError,
)
from ._event import ServerSentEvent
from ._forwarded import TrustedProxies
from ._hooks import Connection
from ._lifecycle import shutdown
from ._parser import Comment, EventStreamParser, MessageEvent
from ._request import client_address, last_event_id
from ._stats import Stats, metrics_app
from ._stream import EventStream
from ._wsgi import SSEMiddleware, stream_response

__version__ = "0.1.0"

__all__ = [
    "CORS",
    "END_EVENT",
    "HISTORY_LOST_EVENT",
    "Authorizer",
    "Backend",
    "BackendUnavailableError",
    "Channel",
    "ChannelClosedError",
    "ClientFiles",
    "Comment",
    "Connection",
    "EventStream",
    "EventStreamParser",
    "HistoryLostError",
    "InvalidEventError",
    "MemoryBackend",
    "MessageEvent",
    "SSEApp",
    "SSEMiddleware",
    "ServerSentEvent",
    "Stats",
    "Subscription",
    "SubscriptionClosedError",
    "TrustedProxies",
    "UnknownChannelError",
    "UnsafeConcurrencyError",
    "WsgisseError",
    "client_address",
    "client_source",
    "last_event_id",
    "metrics_app",
    "shutdown",
    "stream_response",
]
