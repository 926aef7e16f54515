"""EventStream: the WSGI response body of one event stream.

PEP 3333 gives the body iterable one cleanup hook, ``close()``, and servers call it only
after a write fails or the iteration ends. So the stream writes a heartbeat comment after
every ``heartbeat`` seconds of silence: that write is how a vanished client is noticed,
and it keeps proxies from cutting an idle connection. While events flow, no heartbeat is
written at all.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from ._channel import Subscription
from ._errors import SubscriptionClosedError
from ._event import ServerSentEvent
from ._sync import Handoff, HandoffClosed, spawn_worker

__all__ = ["DEFAULT_HEADERS", "EventStream", "encode_item"]

#: The response headers of every event stream. ``no-transform`` keeps proxies from
#: compressing or rewriting the stream; ``X-Accel-Buffering: no`` tells nginx not to
#: buffer it. No hop-by-hop header (``Connection``...): PEP 3333 forbids them.
DEFAULT_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache, no-transform"),
    ("X-Accel-Buffering", "no"),
)

_HEARTBEAT = b":\n\n"


class _Source(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> bytes: ...

    def close(self) -> None: ...


def encode_item(item: object) -> bytes:
    """Encode what a view yields: a :class:`ServerSentEvent`, or any data for one.

    A ``str``, ``bytes``, ``dict`` or other JSON-serialisable value becomes the data of an
    unnamed event.

    Raises:
        InvalidEventError: the item cannot be carried by the event-stream format.
    """
    if isinstance(item, ServerSentEvent):
        return item.encode()
    return ServerSentEvent(item).encode()


class _IterableSource:
    """Runs a view's iterable in a worker so that heartbeats flow while it blocks."""

    def __init__(self, events: Iterable[object]) -> None:
        self._handoff = Handoff()
        self._events = events
        self._interrupt = spawn_worker(self._run, name="wsgisse event source")

    def _run(self) -> None:
        handoff = self._handoff
        iterator: Iterator[object] | None = None
        error: BaseException | None = None
        try:
            iterator = iter(self._events)
            for item in iterator:
                handoff.put(encode_item(item))
        except HandoffClosed:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the serving side to raise
            if type(exc).__name__ != "GreenletExit":
                error = exc
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()  # The view's finally blocks run now, not when garbage collected.
            handoff.finish(error)

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        try:
            return self._handoff.get(block, timeout)
        except EOFError as exc:
            if exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise SubscriptionClosedError("finished") from None

    def close(self) -> None:
        self._handoff.close()
        self._interrupt()


class EventStream:
    """The WSGI body iterable that streams events to one client.

    Args:
        source: a :class:`~wsgisse.Subscription`, or any iterable (a generator, say) of
            :class:`~wsgisse.ServerSentEvent` objects or of data for unnamed events
            (``str``, ``bytes``, JSON-serialisable values). An iterable runs in a worker
            (a greenlet under gevent, a thread otherwise), so it may block between
            events while heartbeats keep flowing.
        heartbeat: seconds of silence after which a comment is written (``None``: never).
            15 s keeps under the 30-60 s idle timeouts of common proxies and notices a
            gone client within that time.
        retry: the reconnection delay in milliseconds sent to the client first
            (``None``: leave the browser's default, about 3 s).
        on_close: called once, when the stream is closed.

    The first chunk is ready at once, so that the server sends the headers and the
    browser fires ``open`` without waiting for an event. ``close()`` (called by the
    server) ends the subscription or the worker exactly once, from any thread.

    Raises:
        ValueError: ``heartbeat`` not positive.
        InvalidEventError: ``retry`` out of range.
    """

    #: The status line of an event stream.
    status = "200 OK"
    #: The response headers; see :data:`DEFAULT_HEADERS`.
    headers = DEFAULT_HEADERS

    def __init__(
        self,
        source: Subscription | Iterable[object],
        *,
        heartbeat: float | None = 15.0,
        retry: int | None = 3000,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if heartbeat is not None and not heartbeat > 0:
            raise ValueError(f"heartbeat must be positive seconds or None, not {heartbeat!r}")
        self._preamble: bytes | None = ServerSentEvent(comment="wsgisse", retry=retry).encode()
        self._heartbeat = heartbeat
        self._on_close = on_close
        self._closed = False
        self._source: _Source = (
            source if isinstance(source, Subscription) else _IterableSource(source)
        )

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> bytes:
        preamble = self._preamble
        if preamble is not None:
            self._preamble = None
            return preamble
        try:
            return self._source.get(True, self._heartbeat)
        except queue.Empty:
            return _HEARTBEAT
        except SubscriptionClosedError:
            raise StopIteration from None

    def close(self) -> None:
        """End the stream and release what it holds; idempotent, safe from any thread."""
        if self._closed:
            return
        self._closed = True
        self._source.close()
        if self._on_close is not None:
            self._on_close()
