"""The life of a process' streams: shutdown, reload, and the servers' signals.

A WSGI server stops (SIGTERM) or reloads (SIGHUP, which makes gunicorn's master replace
its workers with a SIGTERM each) by closing its listeners and waiting for the open
requests to finish. An event stream never finishes by itself, so without help gunicorn
waits its whole ``graceful_timeout`` and then kills the worker, and the app's
``finally`` blocks never run. :func:`shutdown` ends every stream of the process on
purpose instead: each writes what it has pending, then a farewell event with a jittered
``retry`` (so that clients spread their reconnects over the new workers), and closes.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ._sync import cooperative_sleep, native_lock, spawn_native_thread

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "adapt_to",
    "adapted_to",
    "chain_shutdown_signals",
    "register",
    "revoke_streams",
    "set_stream_limit",
    "set_worker_count",
    "shutdown",
    "shutting_down",
    "stream_limit",
    "tag",
    "worker_count",
]

# How long, and how many, revocations are remembered to end a stream tagged late (one
# whose authorization ran before a revocation that was applied before it was tagged).
_REVOCATION_MEMORY = 60.0
_REVOCATIONS_KEPT = 256


class _Endable(Protocol):
    def end(self, reason: str) -> None: ...


class _Process:
    """What this process knows of its streams (one instance: signals are per process)."""

    def __init__(self) -> None:
        self.lock = native_lock()
        self.streams: weakref.WeakSet[_Endable] = weakref.WeakSet()
        self.shutting_down = False
        self.exit_hook_registered = False
        self.stream_limit: int | None = None
        self.worker_count: int | None = None
        self.told_of_workers = False
        # The servers whose hooks have fitted this process (wsgisse.integrations.*).
        self.adapted_to: set[str] = set()
        self.chained_handlers: set[Callable[[int, FrameType | None], None]] = set()
        # Who each stream serves and from which channels: what a revocation matches.
        self.tags: weakref.WeakKeyDictionary[_Endable, tuple[str | None, tuple[Any, ...]]] = (
            weakref.WeakKeyDictionary()
        )
        # (when, user, channel predicate) of the recent revocations, oldest first.
        self.revocations: collections.deque[tuple[float, str | None, Callable[[Any], bool]]] = (
            collections.deque(maxlen=_REVOCATIONS_KEPT)
        )


# Created empty at import (no side effect); filled as streams open.
_process = _Process()


_made_here = threading.local()


@contextlib.contextmanager
def collecting(streams: list[Any]) -> Iterator[None]:
    """Append to ``streams`` every stream made by this thread (or greenlet) meanwhile.

    How the test client finds the streams of one app call, to end them on disconnect.
    """
    _made_here.streams = streams
    try:
        yield
    finally:
        _made_here.streams = None


def register(stream: _Endable) -> None:
    """Track a live stream so that :func:`shutdown` can end it.

    The first registration also makes the process end its streams when the interpreter
    exits (the Werkzeug reloader restarts its child process with ``sys.exit``).
    """
    collector = getattr(_made_here, "streams", None)
    if collector is not None:
        collector.append(stream)
    with _process.lock:
        _process.streams.add(stream)
        if _process.exit_hook_registered:
            return
        _process.exit_hook_registered = True
    atexit.register(shutdown, timeout=1.0)


def unregister(stream: _Endable) -> None:
    """Stop tracking a stream (it has closed)."""
    with _process.lock:
        _process.streams.discard(stream)
        _process.tags.pop(stream, None)


def tag(stream: _Endable, user: str | None, channels: tuple[Any, ...], since: float) -> None:
    """Say whom ``stream`` serves, from which channels, so that revocations can find it.

    ``since``: the ``time.monotonic()`` at which its authorization began. A revocation
    applied in this process since then that matches it ends it at once: the app's
    ``authorize`` may have said yes just before the user was revoked.
    """
    with _process.lock:
        _process.tags[stream] = (user, channels)
        recent = [entry for entry in _process.revocations if entry[0] >= since]
    for _, revoked_user, matches in recent:
        if _matches(user, channels, revoked_user, matches):
            stream.end("revoked")
            return


def _matches(
    user: str | None,
    channels: tuple[Any, ...],
    revoked_user: str | None,
    matches: Callable[[Any], bool],
) -> bool:
    return (revoked_user is None or user == revoked_user) and any(map(matches, channels))


def revoke_streams(user: str | None, matches: Callable[[Any], bool]) -> int:
    """End (reason ``"revoked"``) the tagged streams of ``user`` on a channel ``matches``.

    ``user`` ``None``: any user. Returns how many streams matched (some may have been
    ended already). Remembered for a while, for streams tagged late (see :func:`tag`).
    """
    now = time.monotonic()
    with _process.lock:
        revocations = _process.revocations
        while revocations and revocations[0][0] < now - _REVOCATION_MEMORY:
            revocations.popleft()
        revocations.append((now, user, matches))
        chosen = [
            stream
            for stream, (stream_user, channels) in _process.tags.items()
            if _matches(stream_user, channels, user, matches)
        ]
    for stream in chosen:
        stream.end("revoked")
    return len(chosen)


def live_streams() -> int:
    """How many streams are open in this process."""
    with _process.lock:
        return len(_process.streams)


def stream_limit() -> int | None:
    """The most streams this process may hold at once (``None``: no limit)."""
    return _process.stream_limit


def set_stream_limit(limit: int | None) -> None:
    """Cap the streams of the whole process (a thread-per-request server's threads).

    Raises:
        ValueError: ``limit`` below 1.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"the stream limit must be at least 1, not {limit}")
    _process.stream_limit = limit


def adapt_to(server: str) -> None:
    """Note that ``server``'s integration has fitted this process' streams to it."""
    _process.adapted_to.add(server)


def adapted_to(server: str) -> bool:
    """Whether ``server``'s integration has run in this process (see :func:`adapt_to`)."""
    return server in _process.adapted_to


def worker_count() -> int | None:
    """How many worker processes serve the app beside this one (``None``: not known)."""
    return _process.worker_count


def set_worker_count(count: int | None) -> None:
    """Record how many worker processes serve the app (a server hook knows; see gunicorn)."""
    _process.worker_count = count


def workers_to_warn_of() -> int | None:
    """The worker count, the first time it is asked while above one; ``None`` after.

    What a per-process backend calls before its first stream: one warning per process is
    loud enough, one per channel would flood the log.
    """
    with _process.lock:
        count = _process.worker_count
        if count is None or count < 2 or _process.told_of_workers:  # noqa: PLR2004
            return None
        _process.told_of_workers = True
        return count


def shutting_down() -> bool:
    """Whether :func:`shutdown` has begun in this process."""
    return _process.shutting_down


def shutdown(timeout: float = 5.0, *, reason: str = "shutdown") -> int:
    """End every open stream of the process on purpose, and return how many there were.

    Each stream writes what it has pending, then a :data:`~wsgisse.END_EVENT` event with a
    jittered ``retry``, and closes; streams opened afterwards get the same farewell at
    once. Waits up to ``timeout`` seconds for the streams to close (cooperatively under
    gevent). Call it before stopping a server: ``wsgisse.shutdown(); server.stop()``.
    """
    with _process.lock:
        _process.shutting_down = True
        streams = list(_process.streams)
    for stream in streams:
        stream.end(reason)
    deadline = time.monotonic() + timeout
    sleep = cooperative_sleep()
    while live_streams() and time.monotonic() < deadline:
        sleep(0.01)
    return len(streams)


def chain_shutdown_signals(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> bool:
    """Make ``signals`` start :func:`shutdown` before the handler already installed runs.

    Only the main thread can install signal handlers: elsewhere this does nothing and
    returns ``False``. The shutdown runs in a new native thread, never inside the signal
    handler, which may have interrupted code holding one of wsgisse's locks.
    """
    installed = False
    for signum in signals:
        try:
            previous = signal.getsignal(signum)
            if previous in _process.chained_handlers:
                continue
            signal.signal(signum, _chained_handler(previous))
        except ValueError:  # Not the main thread.
            return installed
        installed = True
    return installed


def _chained_handler(previous: Any) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        spawn_native_thread(shutdown, name="wsgisse shutdown")
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    _process.chained_handlers.add(handler)
    return handler
