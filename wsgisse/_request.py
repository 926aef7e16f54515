"""The only module that reads a WSGI environ: what a stream request asks for.

It validates the request line and the ``Last-Event-ID``, and finds the client's socket
where the server exposes it. Everything is refused with a :class:`BadRequest` that the
WSGI layer turns into a plain-text 4xx answer, never a traceback.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ._forwarded import TrustedProxies, forwarded_client, trusted_proxies_from

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "CLIENT_ADDRESS_KEY",
    "MAX_CHANNEL_NAME_LENGTH",
    "MAX_ID_LENGTH",
    "ONE_REQUEST_SERVER",
    "BadRequest",
    "client_address",
    "client_socket",
    "decline_compression",
    "direct_socket",
    "if_none_match",
    "is_multithreaded",
    "is_preflight",
    "last_event_id",
    "origin",
    "path",
    "preflight_method",
    "prepare_stream_socket",
    "record_start_response",
    "recorded_start_response",
    "remember_client_address",
    "request_method",
    "requested_channels",
    "served_by_mod_wsgi",
    "server_software",
    "serves_one_request_at_a_time",
    "set_no_delay",
    "stream_method",
    "wants_event_stream",
]

#: The longest ``Last-Event-ID`` accepted. Ids we assign are about 20 characters; the
#: bound keeps a hostile header from costing memory or log space.
MAX_ID_LENGTH = 1024

#: The longest channel name accepted in a request.
MAX_CHANNEL_NAME_LENGTH = 128


class BadRequest(ValueError):  # noqa: N818 - an HTTP answer, not an error of wsgisse's
    """A request the stream endpoint answers with a 4xx status.

    Internal: public callers see it as the ``ValueError`` it is.
    """

    def __init__(
        self,
        status: str,
        message: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        reason: str = "bad-request",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        #: What the refusal counts as in the endpoint's stats.
        self.reason = reason


def stream_method(environ: WSGIEnvironment) -> str:
    """The request method, if an event stream can answer it (``GET`` or ``HEAD``).

    Raises:
        BadRequest: 405 with ``Allow: GET, HEAD`` for any other method.
    """
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    if method not in ("GET", "HEAD"):
        raise BadRequest(
            "405 Method Not Allowed",
            f"an event stream answers GET, not {method}",
            [("Allow", "GET, HEAD")],
        )
    return method


def request_method(environ: WSGIEnvironment) -> str:
    """The request method, upper-case (``GET`` when the server sets none)."""
    return str(environ.get("REQUEST_METHOD", "GET")).upper()


def if_none_match(environ: WSGIEnvironment) -> list[str]:
    """The entity tags of ``If-None-Match``, as sent (``["*"]`` for any)."""
    value = str(environ.get("HTTP_IF_NONE_MATCH", ""))
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def is_preflight(environ: WSGIEnvironment) -> bool:
    """Whether the request is an ``OPTIONS`` request (a CORS preflight)."""
    return str(environ.get("REQUEST_METHOD", "")).upper() == "OPTIONS"


def preflight_method(environ: WSGIEnvironment) -> str | None:
    """The method a CORS preflight asks about (``Access-Control-Request-Method``)."""
    value = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
    return None if value is None else str(value)


def path(environ: WSGIEnvironment) -> str:
    """The request's path below the application (``PATH_INFO``)."""
    return str(environ.get("PATH_INFO", ""))


def server_software(environ: WSGIEnvironment) -> str:
    """The server's name and version (``SERVER_SOFTWARE``, e.g. ``gunicorn/23.0.0``)."""
    return str(environ.get("SERVER_SOFTWARE", ""))


def is_multithreaded(environ: WSGIEnvironment) -> bool:
    """Whether the server says it runs requests in several threads (``wsgi.multithread``)."""
    return bool(environ.get("wsgi.multithread"))


def _wsgi_str_to_text(value: str, what: str) -> str:
    # PEP 3333 hands header bytes over as latin-1 code points; browsers send UTF-8.
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadRequest("400 Bad Request", f"{what} is not valid UTF-8") from None


def _checked_id(value: str, what: str) -> str | None:
    if not value:
        return None
    if len(value) > MAX_ID_LENGTH:
        raise BadRequest("400 Bad Request", f"{what} is longer than {MAX_ID_LENGTH} characters")
    if "\x00" in value or "\r" in value or "\n" in value:
        raise BadRequest("400 Bad Request", f"{what} contains NUL, CR or LF")
    return value


def last_event_id(environ: WSGIEnvironment) -> str | None:
    """The id of the last event the client received, or ``None`` for a first connection.

    The ``Last-Event-ID`` header wins; a ``lastEventId`` query parameter serves the first
    connection, on which a browser's ``EventSource`` cannot set a header (it reconnects to
    the same URL later, with the header carrying the newer id). An empty value means
    none, as a browser sends no header when its last event id is empty.

    Raises:
        ValueError: the id is not UTF-8, is over :data:`MAX_ID_LENGTH` characters, or
            contains NUL, CR or LF (the stream endpoint answers it with 400).
    """
    header = environ.get("HTTP_LAST_EVENT_ID")
    if header:
        return _checked_id(_wsgi_str_to_text(header, "Last-Event-ID").strip(), "Last-Event-ID")
    query = environ.get("QUERY_STRING")
    if not query or "lastEventId" not in query:
        return None
    try:
        # Percent-escapes decoded as latin-1 give back the raw bytes, checked as UTF-8 next.
        pairs = parse_qsl(query, keep_blank_values=True, encoding="latin-1")
        values = [
            _raw.encode("latin-1").decode("utf-8") for name, _raw in pairs if name == "lastEventId"
        ]
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadRequest("400 Bad Request", "lastEventId is not valid UTF-8") from None
    return _checked_id(values[-1], "lastEventId") if values else None


def requested_channels(environ: WSGIEnvironment, parameter: str, limit: int) -> tuple[str, ...]:
    """The channel names asked for with ``?parameter=a&parameter=b``, in order, once each.

    Raises:
        BadRequest: 400 when a name is empty, longer than
            :data:`MAX_CHANNEL_NAME_LENGTH`, not UTF-8 or holds a control character, or
            when more than ``limit`` channels are asked for.
    """
    query = environ.get("QUERY_STRING") or ""
    if parameter not in query:
        return ()
    names: list[str] = []
    for name, raw in parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
        if name != parameter:
            continue
        try:
            value = raw.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise BadRequest("400 Bad Request", "a channel name is not valid UTF-8") from None
        if not value or len(value) > MAX_CHANNEL_NAME_LENGTH or not value.isprintable():
            raise BadRequest(
                "400 Bad Request",
                f"a channel name must be 1 to {MAX_CHANNEL_NAME_LENGTH} printable characters",
            )
        if value not in names:
            names.append(value)
        if len(names) > limit:
            raise BadRequest("400 Bad Request", f"at most {limit} channels in one stream")
    return tuple(names)


def origin(environ: WSGIEnvironment) -> str | None:
    """The ``Origin`` of a cross-origin request, or ``None``."""
    value = environ.get("HTTP_ORIGIN")
    return str(value) if value else None


#: The environ key under which :class:`~wsgisse.SSEApp` leaves the client address it
#: computed (``trusted_proxies`` applied) before it calls the ``authorize`` hook.
CLIENT_ADDRESS_KEY = "wsgisse.client_address"


def client_address(
    environ: WSGIEnvironment, trusted_proxies: TrustedProxies | str | Iterable[str] | None = None
) -> str:
    """The client's address, seen through the proxies you trust.

    Without ``trusted_proxies`` it is the TCP peer, ``REMOTE_ADDR`` (behind a proxy: the
    proxy's). With them, and when the peer is one of them, it is the right-most address
    of the proxies' ``X-Forwarded-For`` (or ``Forwarded``; see
    :class:`~wsgisse.TrustedProxies`) that is not a trusted proxy: a header sent by any
    other peer is ignored, so a client cannot choose its own address.

    Raises:
        ValueError: ``trusted_proxies`` holds an entry that is not an address or network.
    """
    trusted = trusted_proxies_from(trusted_proxies)
    peer = str(environ.get("REMOTE_ADDR") or "")
    if trusted is None:
        return peer
    key = "HTTP_FORWARDED" if trusted.header == "forwarded" else "HTTP_X_FORWARDED_FOR"
    header = environ.get(key)
    return forwarded_client(peer, None if header is None else str(header), trusted)


def remember_client_address(environ: WSGIEnvironment, address: str) -> None:
    """Leave ``address`` in the environ under :data:`CLIENT_ADDRESS_KEY` for the hooks."""
    environ[CLIENT_ADDRESS_KEY] = address


#: What a stream request on such a server is answered (500) and the log says, once.
ONE_REQUEST_SERVER = (
    "wsgisse: this server serves one request at a time (wsgiref's simple_server, "
    "bottle.run()'s default, a server without threads), so an event stream would freeze "
    "every other request; the stream was refused. Serve the app with gunicorn -k gevent, "
    "gevent's WSGIServer, bottle.run(server='gevent'), or a threaded server "
    "(gunicorn -k gthread, Werkzeug's threaded=True, waitress)."
)


def serves_one_request_at_a_time(environ: WSGIEnvironment, in_gevent: bool) -> bool:
    """Whether the server says it serves one request at a time, so that a stream freezes it.

    That is a server (one that names itself in ``SERVER_SOFTWARE``: an environ made by
    hand in a test is none) whose environ is neither ``wsgi.multithread`` nor
    ``wsgi.multiprocess``, running the request on the main thread outside gevent
    (``in_gevent``): wsgiref's ``simple_server`` and so Bottle's default ``bottle.run()``,
    Werkzeug without threads, one gunicorn sync worker. The main thread is asked for
    because wsgiref's server says ``multithread`` False even when a ``ThreadingMixIn``
    runs each request on a thread of its own.
    """
    return (
        bool(environ.get("SERVER_SOFTWARE"))
        and environ.get("wsgi.multithread") is False
        and environ.get("wsgi.multiprocess") is False
        and not in_gevent
        and threading.current_thread() is threading.main_thread()
    )


def served_by_mod_wsgi(environ: WSGIEnvironment) -> bool:
    """Whether Apache's mod_wsgi runs the request (it says so in ``mod_wsgi.version``)."""
    return "mod_wsgi.version" in environ


def wants_event_stream(environ: WSGIEnvironment) -> bool:
    """Whether the client says it reads ``text/event-stream`` (every ``EventSource`` does)."""
    return "text/event-stream" in str(environ.get("HTTP_ACCEPT", ""))


def client_socket(environ: WSGIEnvironment) -> Any:
    """The client's socket where the server exposes it (gunicorn, Werkzeug, gevent).

    Duck-typed: without monkey-patching, gevent's socket class is not ``socket.socket``.
    Returns ``None`` when the server hides it (waitress, uWSGI, ...).
    """
    raw: Any = getattr(getattr(environ.get("wsgi.input"), "rfile", None), "raw", None)
    # gevent.pywsgi exposes no socket, but its input stream reads from the socket's file.
    for candidate in (
        environ.get("gunicorn.socket"),
        environ.get("werkzeug.socket"),
        getattr(raw, "_sock", None),
    ):
        if callable(getattr(candidate, "setsockopt", None)) and hasattr(candidate, "family"):
            return candidate
    return None


def direct_socket(environ: WSGIEnvironment) -> Any:
    """The request's socket, if it is one the publish loop could write to itself.

    Only under gunicorn's and gevent's own HTTP servers, over plain TCP (a TLS socket must
    be written by its TLS layer); ``None`` anywhere else. Whether it is then *sound* to
    write to it is the stream's to prove (``_direct.FastPath``).
    """
    if not server_software(environ).startswith(("gunicorn/", "gevent/")):
        return None
    sock = client_socket(environ)
    if sock is None or not hasattr(sock, "_sock") or hasattr(sock, "do_handshake"):
        return None
    return sock


#: Where an integration records the server's own ``start_response`` when the framework
#: calls the endpoint with one of its own (see :func:`record_start_response`).
_SERVER_START_RESPONSE = "wsgisse.server_start_response"


def record_start_response(environ: WSGIEnvironment, start_response: object) -> None:
    """Note the ``start_response`` a framework's WSGI entry point was called with.

    The integrations call it at their app's entry, so that an endpoint the framework
    calls with a ``start_response`` of its own can still find the server behind it.
    """
    environ[_SERVER_START_RESPONSE] = start_response


def recorded_start_response(environ: WSGIEnvironment) -> object:
    """The ``start_response`` an integration recorded at its app's entry, or ``None``."""
    return environ.get(_SERVER_START_RESPONSE)


def decline_compression(environ: WSGIEnvironment) -> None:
    """Make the request accept only the identity coding, from here on in.

    An event stream must never be compressed by a layer that does not flush after every
    event (Flask-Compress, Django's ``GZipMiddleware``: both hold it back, and a fast-path
    write past them corrupts it). Layers that run after the stream was answered (Flask's
    ``after_request`` hooks, Django's ``process_response``) read ``Accept-Encoding`` from
    the request: told ``identity``, they leave the stream alone.
    """
    environ["HTTP_ACCEPT_ENCODING"] = "identity"


def set_no_delay(environ: WSGIEnvironment) -> None:
    """Turn off Nagle's algorithm on the client's socket, if the server exposes it.

    Without it a small event written after another waits for the previous one's ACK
    (about 40 ms with delayed ACKs): gevent's server leaves Nagle on.
    """
    prepare_stream_socket(environ, write_timeout=None)


def prepare_stream_socket(environ: WSGIEnvironment, write_timeout: float | None) -> bool:
    """Make the client's socket fit for a stream; ``False`` if the server hides it.

    * ``TCP_NODELAY``: small events leave at once (see :func:`set_no_delay`).
    * a send timeout of ``write_timeout`` seconds: a client that stops reading fills its
      TCP window, and the server's write then fails after that long instead of holding
      the connection (and a greenlet or thread) forever.
    * ``TCP_USER_TIMEOUT`` (Linux) of the same length: a client that vanished without a
      FIN never acknowledges the heartbeats, and the kernel fails the connection after
      that long instead of retransmitting for about 15 minutes.
    """
    sock = client_socket(environ)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    # The client may already be gone; the first write will tell.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if write_timeout is not None:
            sock.settimeout(write_timeout)
            user_timeout = getattr(socket, "TCP_USER_TIMEOUT", None)
            if user_timeout is not None:
                sock.setsockopt(socket.IPPROTO_TCP, user_timeout, int(write_timeout * 1000))
    return True
