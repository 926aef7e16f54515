"""The fast path's one piece of I/O: writing framed bytes to a client's socket ourselves.

The ordinary path wakes each subscriber's greenlet, which returns the frame to the server,
which frames it and writes it: three greenlet switches, a timer and the server's write
path per subscriber and event. Where the server lends us the socket and its framing is
known (gunicorn's and gevent's own servers over plain TCP), a publish instead writes the
shared frame to each waiting subscriber's socket itself, without blocking. *Who* is
written to, and when that is safe, is decided by ``_fanout``; this module only writes.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["DirectWriter"]


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
