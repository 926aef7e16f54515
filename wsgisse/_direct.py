"""Fan-out from one loop: write a new event to every waiting subscriber's socket at once.

The ordinary path wakes each subscriber's greenlet, which returns the frame to the server,
which frames it and writes it: three greenlet switches, a timer and the server's write
path per subscriber and event. Where the server hands over the socket and its framing is
known (gunicorn's and gevent's servers), the publish instead sends the shared frame bytes
to each parked subscriber's socket itself, without blocking, on the hub's thread, and
wakes only the subscribers whose socket could not take it all: they write the rest
themselves, before anything else.

This is safe because a subscription is *parked* only while its greenlet waits inside
``Subscription.get``: then the server is not writing to the socket (it waits for the
stream's next chunk), and no other greenlet of that thread can run during the loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._sync import wake_all

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from ._channel import Channel, Subscription

__all__ = ["DirectWriter", "direct_writer", "sweep"]

# A subscriber further behind than this is left to its own greenlet: its catch-up write is
# large, and the loop must stay short for everybody else.
_MAX_DIRECT_LAG = 64


class DirectWriter:
    """What the loop needs to write to one client's socket.

    Attributes:
        remainder: bytes the loop could not send (the socket was full); the subscriber's
            greenlet writes them, blocking cooperatively, before anything else.
        bytes_sent: bytes written by the loop.
        last_write: when the loop last wrote (``time.monotonic()``); a heartbeat is due
            only after that much silence.
    """

    __slots__ = ("_chunked", "_raw", "_sock", "bytes_sent", "last_write", "remainder")

    def __init__(self, sock: Any, chunked: bool) -> None:
        self._sock = sock  # the server's (gevent) socket: cooperative, with its timeout
        self._raw = sock._sock  # noqa: SLF001 - its non-blocking OS socket
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


def direct_writer(environ: WSGIEnvironment, sock: Any) -> DirectWriter | None:
    """A writer for this request's socket, if the loop may write to it.

    Only for gunicorn's and gevent's own HTTP servers, whose framing of a streamed body
    is known (chunked on HTTP/1.1, raw on HTTP/1.0), over plain TCP: a TLS socket must be
    written by its TLS layer.
    """
    software = str(environ.get("SERVER_SOFTWARE", ""))
    if not software.startswith(("gunicorn/", "gevent/")):
        return None
    if sock is None or not hasattr(sock, "_sock") or hasattr(sock, "do_handshake"):
        return None
    protocol = str(environ.get("SERVER_PROTOCOL", "HTTP/1.1"))
    return DirectWriter(sock, chunked=protocol != "HTTP/1.0")


def sweep(channel: Channel, parked: Sequence[Subscription]) -> None:
    """Deliver the channel's new frames to parked subscribers from this one loop.

    Runs on the thread of the subscribers' hub. Those it serves stay parked; the others
    (socket full, too far behind, ended) are woken to do it themselves.
    """
    now = time.monotonic()
    served: list[tuple[DirectWriter, bytes]] = []
    to_wake: list[Subscription] = []
    framed_at: dict[int, bytes] = {}
    with channel._lock:  # noqa: SLF001
        log = channel._log  # noqa: SLF001
        if log.audience_held:  # Filtering per subscriber is the greenlets' job.
            to_wake.extend(parked)
            parked = ()
        head = log.head
        oldest = log.oldest
        for subscription in parked:
            writer = subscription._direct  # noqa: SLF001
            cursor = subscription._cursor  # noqa: SLF001
            if (
                writer is None
                or writer.remainder
                or subscription._end_reason is not None  # noqa: SLF001
                or subscription._prelude  # noqa: SLF001
                or cursor < oldest
                or head - cursor > _MAX_DIRECT_LAG
            ):
                to_wake.append(subscription)
                continue
            if cursor < head:
                framed = framed_at.get(cursor)
                if framed is None:  # One framed bytes object for all at the same place.
                    framed = framed_at[cursor] = writer.frame(b"".join(log.frames_from(cursor)))
                subscription._cursor = head  # noqa: SLF001
                served.append((writer, framed))
            channel._parked[subscription] = None  # noqa: SLF001 - still waiting
        channel._counts["direct_writes"] += len(served)  # noqa: SLF001
    # Outside the lock: no lock is held while writing to a socket.
    failed = {id(writer) for writer, framed in served if not writer.try_send(framed, now)}
    if failed:
        with channel._lock:  # noqa: SLF001
            for subscription in parked:
                if id(subscription._direct) in failed:  # noqa: SLF001
                    channel._parked.pop(subscription, None)  # noqa: SLF001
                    to_wake.append(subscription)
    if to_wake:
        wake_all([subscription._waiter for subscription in to_wake])  # noqa: SLF001
