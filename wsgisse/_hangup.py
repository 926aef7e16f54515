"""Notice, within about a second, a client that hangs up while its stream waits.

A server learns that a streaming client left only when a write fails, and the kernel
accepts the first write after the client's FIN: with a 15 s heartbeat a gone client
holds its slot (and a greenlet or thread) for up to 30 s. An event-stream client sends
nothing after its request, so its socket turning *hung up* (``EPOLLRDHUP``: the peer
shut down its side; ``EPOLLHUP``/``EPOLLERR``: reset) can only mean it left.

One native thread per process watches every stream socket with one ``epoll`` (Linux),
started at the first watch and ended once nothing is watched; it never reads a byte
from a socket. Elsewhere (no epoll) nothing is watched and the heartbeat remains the
only way a departure is noticed.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Callable
from typing import Any

from ._sync import native_lock, spawn_native_thread, unpatched

__all__ = ["watch"]

# How long one epoll wait lasts: also how soon the thread ends once nothing is watched.
_POLL_SECONDS = 1.0


class _Watch:
    """The process' one watcher (created at import, empty: no thread until a watch)."""

    def __init__(self) -> None:
        self._lock = native_lock()
        self._epoll: Any = None
        self._running = False
        # fd -> (token, callback): the token tells a stale unwatch (the fd was closed by
        # the server and reused by a newer stream) from the owner's.
        self._watched: dict[int, tuple[object, Callable[[], None]]] = {}

    def watch(self, sock: Any, on_hangup: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_hangup`` (from the watcher's thread) once the client hangs up.

        Returns the function that stops watching (call it before the socket closes).
        """
        epoll_class = unpatched("select", "epoll") if hasattr(select, "EPOLLRDHUP") else None
        try:
            fd = sock.fileno()
        except (OSError, ValueError):
            return _nothing
        if epoll_class is None or fd < 0:
            return _nothing
        token = object()
        with self._lock:
            if self._epoll is None:
                self._epoll = epoll_class()
            try:
                self._epoll.register(fd, select.EPOLLRDHUP)
            except OSError:  # Closed already, or watched by a stale entry: leave it.
                return _nothing
            self._watched[fd] = (token, on_hangup)
            start = not self._running
            self._running = True
        if start:
            spawn_native_thread(self._run, name="wsgisse hang-up watch")

        def unwatch() -> None:
            with self._lock:
                entry = self._watched.get(fd)
                if entry is None or entry[0] is not token:
                    return
                del self._watched[fd]
                self._forget_locked(fd)

        return unwatch

    def _forget_locked(self, fd: int) -> None:
        # Closed since: the kernel dropped the registration with the socket.
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(fd)

    def _run(self) -> None:
        while True:
            with self._lock:
                epoll = self._epoll
                if not self._watched:
                    self._running = False
                    self._epoll = None
                    epoll.close()
                    return
            try:
                ready = epoll.poll(_POLL_SECONDS)
            except OSError:  # Closed under us: nothing is left to watch.
                ready = []
            hung_up = []
            with self._lock:
                for fd, _ in ready:
                    entry = self._watched.pop(fd, None)
                    if entry is not None:
                        self._forget_locked(fd)
                        hung_up.append(entry[1])
            for callback in hung_up:
                callback()


def _nothing() -> None:
    pass


_watcher = _Watch()


def watch(sock: Any, on_hangup: Callable[[], None]) -> Callable[[], None]:
    """Call ``on_hangup`` once the client of ``sock`` hangs up; return the unwatch.

    ``on_hangup`` runs on the watcher's native thread: it must be safe from any thread.
    Without epoll (not Linux) nothing is watched and the returned function does nothing.
    """
    return _watcher.watch(sock, on_hangup)
