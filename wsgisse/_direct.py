"""The fast path's one piece of I/O: writing framed bytes to a client's socket ourselves.

The ordinary path wakes each subscriber's greenlet, which returns the frame to the server,
which frames it and writes it: three greenlet switches, a timer and the server's write
path per subscriber and event. Where the server lends us the socket and its framing is
known (gunicorn's and gevent's own servers over plain TCP), a publish instead writes the
shared frame to each waiting subscriber's socket itself, without blocking. *Who* is
written to is decided by ``_fanout``; this module writes, and proves first that writing
past the server is sound.

The proof (:class:`FastPath`): bytes written past the server bypass every WSGI layer
between the server and the stream, so a layer that changes the body (a compressor, a
rewriter, a buffer) would see part of the stream and the wire would carry a mix. The
socket is lent only when

* the ``start_response`` the stream was answered with is the server's own (bound to
  gunicorn's ``Response`` or gevent's ``WSGIHandler``): no layer rewrote the headers;
* the server iterates the stream object itself, unwrapped (gevent: its handler's
  ``result`` *is* the stream; gunicorn: the code calling the stream's ``__next__`` is
  gunicorn's), and has written exactly the bytes the stream returned so far (gunicorn's
  ``Response.sent``);
* the body's framing is read from the server's own decision (chunked or not).

Anything else takes the ordinary path, which is correct under any middleware.
"""

from __future__ import annotations

import functools
import inspect
import time
import types
from collections.abc import Iterable
from typing import Any

__all__ = ["DirectWriter", "FastPath", "server_of"]


class DirectWriter:
    """What the publish loop needs to write to one client's socket.

    Args:
        sock: the server's (gevent) socket of the request, cooperative and with its
            timeout; the loop writes to the non-blocking OS socket beneath it.
        chunked: whether the server frames the body in HTTP/1.1 chunks (else raw bytes,
            as on HTTP/1.0).

    Attributes:
        remainder: bytes the loop could not send (the socket was full); the subscriber's
            greenlet writes them, blocking cooperatively, before anything else.
        bytes_sent: bytes written by the loop.
        last_write: when the loop last wrote (``time.monotonic()``); a heartbeat is due
            only after that much silence.
    """

    __slots__ = ("_chunked", "_raw", "_sock", "bytes_sent", "last_write", "remainder")

    def __init__(self, sock: Any, chunked: bool) -> None:
        self._sock = sock
        self._raw = sock._sock  # noqa: SLF001 - gevent's socket wraps the OS socket here
        self._chunked = chunked
        self.remainder = b""
        self.bytes_sent = 0
        self.last_write = 0.0

    @property
    def sock(self) -> Any:
        """The (gevent) socket written to."""
        return self._sock

    def rebind(self, sock: Any) -> None:
        """Write to ``sock`` from now on (the same connection, taken over from the server)."""
        self._sock = sock
        self._raw = sock._sock  # noqa: SLF001 - as in __init__

    def send(self, data: bytes) -> None:
        """Frame ``data`` and write it, cooperatively, after :attr:`remainder`.

        Raises:
            OSError: the client is gone or stopped reading for the whole write timeout.
        """
        self.flush()
        framed = self.frame(data)
        self._sock.sendall(framed)
        self.bytes_sent += len(framed)
        self.last_write = time.monotonic()

    def finish(self) -> None:
        """End the body as the server would (the last chunk), then close the connection."""
        try:
            self.flush()
            if self._chunked:
                self._sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # Gone already: closing is all that is left.
        finally:
            self._sock.close()

    def frame(self, data: bytes) -> bytes:
        """``data`` as the server would put it on the wire."""
        return b"%x\r\n%s\r\n" % (len(data), data) if self._chunked else data

    def try_send(self, framed: bytes, now: float) -> bool:
        """Send without blocking; ``False`` leaves the unsent part in :attr:`remainder`."""
        try:
            sent = self._raw.send(framed)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = 0  # The client is gone: the greenlet's own write will find out.
        if sent:
            self.bytes_sent += sent
            self.last_write = now
        if sent == len(framed):
            return True
        self.remainder = framed[sent:] if sent else framed
        return False

    def flush(self) -> None:
        """Write :attr:`remainder` (cooperatively, under the socket's write timeout).

        Raises:
            OSError: the client is gone or stopped reading for the whole timeout.
        """
        remainder, self.remainder = self.remainder, b""
        if remainder:
            self._sock.sendall(remainder)
            self.bytes_sent += len(remainder)
            self.last_write = time.monotonic()


class _Server:
    """The server object behind a request's ``start_response``, for the proof above."""

    __slots__ = ("_kind", "_owner")

    def __init__(self, kind: str, owner: Any) -> None:
        self._kind = kind
        self._owner = owner

    def releases(self) -> bool:
        """Whether the server lets the stream take its connection over (``_released``).

        Both take an ``EPIPE`` from the body for a client gone, quietly, and close their
        socket object without touching a descriptor detached from it.
        """
        return self._kind in ("gunicorn", "gevent")

    def chunked(self) -> bool:
        """Whether the server frames this response's body in HTTP/1.1 chunks."""
        attribute = "response_use_chunked" if self._kind == "gevent" else "chunked"
        return bool(getattr(self._owner, attribute, False))

    def carries_unchanged(self, body: object, returned: int) -> bool:
        """Whether the server iterates ``body`` itself and wrote all it returned, as is."""
        if self._kind == "gevent":
            return getattr(self._owner, "result", None) is body
        return getattr(self._owner, "sent", None) == returned and _iterated_by("gunicorn.")


def _iterated_by(package: str) -> bool:
    """Whether the first caller outside wsgisse on this stack is code of ``package``."""
    frame = inspect.currentframe()
    try:
        while frame is not None and frame.f_globals.get("__name__", "").startswith("wsgisse"):
            frame = frame.f_back
        return frame is not None and frame.f_globals.get("__name__", "").startswith(package)
    finally:
        del frame  # A frame reference would keep the whole stack alive.


_SERVER_CLASSES = {
    ("gevent.pywsgi", "WSGIHandler"): "gevent",
    ("gunicorn.http.wsgi", "Response"): "gunicorn",
}


def server_of(start_response: object) -> _Server | None:
    """The server behind ``start_response``, if it is gunicorn's or gevent's own.

    A layer that only adds or changes headers wraps the server's ``start_response`` in a
    function of its own (a closure, a ``functools.partial``, a method of an object that
    holds it): those wrappers are looked through, a few levels deep, to find the server.
    That is only to *find* it: whether the body reaches the server unchanged is proven by
    :meth:`FastPath.writer_for`, whatever the wrappers did.
    """
    todo = [start_response]
    seen: set[int] = set()
    while todo and len(seen) < _MAX_UNWRAP:
        candidate = todo.pop()
        if id(candidate) in seen:
            continue
        seen.add(id(candidate))
        owner = getattr(candidate, "__self__", None)
        if owner is not None:
            for cls in type(owner).__mro__:
                kind = _SERVER_CLASSES.get((cls.__module__, cls.__qualname__))
                if kind is not None:
                    return _Server(kind, owner)
            todo += _functions_in(getattr(owner, "__dict__", {}).values())
        todo += _held_functions(candidate)
    return None


def _functions_in(values: Iterable[object]) -> list[object]:
    # Plain functions, methods and partials only: nothing that could run code when asked.
    return [value for value in values if isinstance(value, _FUNCTION_TYPES)]


def _held_functions(function: object) -> list[object]:
    """The functions a wrapper holds: what it wraps, its closure's, a partial's."""
    held = []
    if isinstance(function, functools.partial):
        held += _functions_in([function.func, *function.args])
    if isinstance(function, types.FunctionType):
        held += _functions_in([getattr(function, "__wrapped__", None)])
        for cell in function.__closure__ or ():
            try:
                held += _functions_in([cell.cell_contents])
            except ValueError:  # An empty cell.
                continue
    if isinstance(function, types.MethodType):
        held += _functions_in([function.__func__])
    return held


_FUNCTION_TYPES = (types.FunctionType, types.MethodType, functools.partial)

# How many callables server_of() looks at before it gives up: a few wrappers deep.
_MAX_UNWRAP = 32


class FastPath:
    """What a stream needs to lend its socket to the publish loop, once proven sound.

    Args:
        sock: the request's (gevent) socket, from ``_request.direct_socket``.
        server: the server behind the response, from :func:`server_of`.
    """

    __slots__ = ("_server", "_sock")

    def __init__(self, sock: Any, server: _Server) -> None:
        self._sock = sock
        self._server = server

    def writer_for(self, body: object, returned: int) -> DirectWriter | None:
        """A writer for the socket if the server carries ``body`` unchanged (see above).

        ``returned``: how many bytes the stream has returned to the server so far. Called
        when the stream's first bytes are out, between two of the server's writes.
        """
        if not self._server.carries_unchanged(body, returned):
            return None
        return DirectWriter(self._sock, chunked=self._server.chunked())

    def releases(self) -> bool:
        """Whether, once lent, the connection may be taken over from the server."""
        return self._server.releases()
