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

__all__ = ["MAX_ID_LENGTH", "BadRequest", "last_event_id", "set_no_delay", "stream_method"]

#: The longest ``Last-Event-ID`` accepted. Ids we assign are about 20 characters; the
#: bound keeps a hostile header from costing memory or log space.
MAX_ID_LENGTH = 1024


class BadRequest(ValueError):  # noqa: N818 - an HTTP answer, not an error of wsgisse's
    """A request the stream endpoint answers with a 4xx status.

    Internal: public callers see it as the ``ValueError`` it is.
    """

    def __init__(self, status: str, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


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


def client_socket(environ: WSGIEnvironment) -> socket.socket | None:
    """The client's socket where the server exposes it (gunicorn, Werkzeug, gevent)."""
    for key in ("gunicorn.socket", "werkzeug.socket"):
        candidate = environ.get(key)
        if isinstance(candidate, socket.socket):
            return candidate
    # gevent.pywsgi exposes none, but its input stream reads from the socket's file.
    raw: Any = getattr(getattr(environ.get("wsgi.input"), "rfile", None), "raw", None)
    candidate = getattr(raw, "_sock", None)
    return candidate if isinstance(candidate, socket.socket) else None


def set_no_delay(environ: WSGIEnvironment) -> None:
    """Turn off Nagle's algorithm on the client's socket, if the server exposes it.

    Without it a small event written after another waits for the previous one's ACK
    (about 40 ms with delayed ACKs): gevent's server leaves Nagle on.
    """
    sock = client_socket(environ)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    # The client may already be gone; the first write will tell.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
