"""The only module that reads a WSGI environ: what a stream request asks for.

It validates the request line and the ``Last-Event-ID``, and finds the client's socket
where the server exposes it. Everything is refused with a :class:`BadRequest` that the
WSGI layer turns into a plain-text 4xx answer, never a traceback.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "MAX_CHANNEL_NAME_LENGTH",
    "MAX_ID_LENGTH",
    "BadRequest",
    "client_address",
    "client_socket",
    "direct_socket",
    "is_multithreaded",
    "is_preflight",
    "last_event_id",
    "origin",
    "path",
    "preflight_method",
    "prepare_stream_socket",
    "requested_channels",
    "server_software",
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


def client_address(environ: WSGIEnvironment) -> str:
    """The address of the peer (behind a proxy: the proxy's; see the deployment docs)."""
    return str(environ.get("REMOTE_ADDR") or "")


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


def direct_socket(environ: WSGIEnvironment) -> tuple[Any, bool] | None:
    """The socket the publish loop may write to itself, and whether the body is chunked.

    Only gunicorn's and gevent's own HTTP servers qualify, whose framing of a streamed
    body is known (chunked on HTTP/1.1, raw on HTTP/1.0), over plain TCP: a TLS socket must
    be written by its TLS layer. ``None`` anywhere else.
    """
    if not server_software(environ).startswith(("gunicorn/", "gevent/")):
        return None
    sock = client_socket(environ)
    if sock is None or not hasattr(sock, "_sock") or hasattr(sock, "do_handshake"):
        return None
    return sock, str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")) != "HTTP/1.0"


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
