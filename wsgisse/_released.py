"""Streams the server has let go of: an idle connection that costs no greenlet.

Under gunicorn's gevent worker an open stream holds a greenlet parked inside gunicorn's
request handler: its saved C stack, its Python frames' data stack, gunicorn's request,
response, parser and environ, about 14 KiB of a stream's 19 (gevent's own server is
alike). Once the fast path writes every event itself (``_direct``), that greenlet only
sends heartbeats and the farewell. So, under those two servers (see
``_direct.FastPath.releases``), the stream takes the connection over: it detaches the
socket's descriptor from the server's socket object and ends the server's handler with
the one error both ignore quietly (``EPIPE``: "the client is gone"), so that the
handler's greenlet and everything it holds are freed while the connection stays open.

From then on the stream is served by a :class:`Pump`: it is the member's waiter, so a
wake (a socket that was full, a stream falling behind, the end) starts a short-lived
greenlet that writes what is due, cooperatively, and parks the member again; a timer of
the hub does the same when a heartbeat or the end of the stream's lifetime is due. At the
end the pump writes the farewell and the last chunk, and closes the connection itself.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

from ._sync import hub_timer, spawn_on_hub

__all__ = ["ConnectionHandedOverError", "Pump", "release_socket"]


class ConnectionHandedOverError(OSError):
    """Raised into gunicorn's handler: the connection now belongs to the stream.

    An ``EPIPE``, which gunicorn logs at debug level only ("Ignoring EPIPE") before it
    closes its socket object, whose descriptor the stream has detached already.
    """

    def __init__(self) -> None:
        super().__init__(errno.EPIPE, "wsgisse took the connection over from the server")


def release_socket(sock: Any) -> Any:
    """A new cooperative socket on ``sock``'s descriptor, detached from ``sock``.

    ``sock`` is closed without closing the descriptor: the server's own close of it later
    does nothing. The new socket keeps ``sock``'s timeout (the stream's write timeout).
    """
    timeout = sock.gettimeout()
    family, kind, proto = sock.family, sock.type, sock.proto
    descriptor = sock.detach()
    released = type(sock)(family, kind, proto, fileno=descriptor)
    released.settimeout(timeout)
    return released


class Pump:
    """The waiter of a released stream's member: a wake runs ``serve`` in a new greenlet.

    Args:
        hub: the gevent hub the stream's connection belongs to (the fast path only runs
            under gevent); wakes arrive on its thread (``_sync.wake_all``).
        serve: does what is due; returns the seconds until it must run again anyway (a
            heartbeat, the end of the stream's life), ``None`` for "only when woken", or
            ``-1`` once the stream has finished.

    A wake while ``serve`` runs makes it run once more; never two at once.
    """

    __slots__ = ("_again", "_cancel_timer", "_running", "_serve", "hub", "thread_id")

    def __init__(self, hub: Any, serve: Callable[[], float | None]) -> None:
        self.hub = hub
        self.thread_id: int | None = hub.thread_ident
        self._serve = serve
        self._running = False
        self._again = False
        self._cancel_timer: Callable[[], None] | None = None

    def wait(self, timeout: float | None) -> None:
        """Never called: nobody blocks on a released stream."""
        del timeout
        raise RuntimeError("a released stream has no greenlet to wait in")

    def wake(self) -> None:
        """Run ``serve`` soon (called on the hub's thread)."""
        if self._running:
            self._again = True
            return
        self._running = True
        spawn_on_hub(self._run)

    def _run(self) -> None:
        after: float | None = -1.0
        try:
            while True:
                self._again = False
                after = self._serve()
                if after == -1 or not self._again:
                    break
        finally:
            self._running = False
            self._arm(after)

    def _arm(self, after: float | None) -> None:
        cancel, self._cancel_timer = self._cancel_timer, None
        if cancel is not None:
            cancel()
        if after is not None and after >= 0:
            self._cancel_timer = hub_timer(self.hub, after, self.wake)
