"""EventStream: the WSGI response body of one event stream.

PEP 3333 gives the body iterable one cleanup hook, ``close()``, and servers call it only
after a write fails or the iteration ends. So the stream writes a heartbeat comment after
every ``heartbeat`` seconds of silence: that write is how a vanished client is noticed,
and it keeps proxies from cutting an idle connection. While events flow, no heartbeat is
written at all.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from . import _lifecycle
from ._channel import Subscription
from ._control import END_REASONS, farewell
from ._errors import SubscriptionClosedError
from ._event import ServerSentEvent
from ._multiplex import MultiSubscription
from ._released import ConnectionHandedOverError, Pump, release_socket
from ._sync import Handoff, HandoffClosed, current_hub, native_lock, spawn_worker

if TYPE_CHECKING:
    from ._direct import DirectWriter, FastPath

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
log = logging.getLogger("wsgisse")
_POSITIONED = (Subscription, MultiSubscription)


class _Source(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> bytes: ...

    def end(self, reason: str) -> None: ...

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
    """Runs a view's iterable in a worker so that heartbeats flow while it blocks.

    The worker starts on the first read, that is once the server iterates the body and
    the view has returned: started any earlier, it would run the generator while the
    framework is still tearing the view down (Flask's ``stream_with_context`` would
    enter the request context while Flask is leaving it).
    """

    def __init__(self, events: Iterable[object]) -> None:
        self._handoff = Handoff()
        self._events = events
        self._interrupt: Callable[[], None] | None = None

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
            _close_iterable(iterator)  # The view's finally blocks run now, not at GC.
            handoff.finish(error)

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        if self._interrupt is None:
            self._interrupt = spawn_worker(self._run, name="wsgisse event source")
        try:
            return self._handoff.get(block, timeout)
        except EOFError as exc:
            if exc.__cause__ is not None:
                raise exc.__cause__ from None
            raise SubscriptionClosedError("finished") from None

    def end(self, reason: str) -> None:
        del reason
        self._handoff.abort()

    def close(self) -> None:
        self._handoff.close()
        if self._interrupt is None:
            # Never started: close the iterable here (a primed generator, such as
            # stream_with_context's, holds a context its finally block must release).
            _close_iterable(self._events)
            return
        # Interrupting a greenlet is only safe from its own thread: close() is called by
        # the server that iterates the stream, on that thread.
        self._interrupt()


def _close_iterable(iterable: object) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class _SubscriptionSource:
    __slots__ = ("_subscription",)

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        return self._subscription.get(block, timeout)

    def lend_socket(self, writer: DirectWriter) -> None:
        self._subscription._lend_socket(writer)  # noqa: SLF001 - the stream's own channel

    def hand_over(self, writer: DirectWriter, waiter: Pump) -> None:
        self._subscription._hand_over(writer, waiter)  # noqa: SLF001 - as above

    def take(self, may_wait: bool) -> bytes | None:
        """What is due, without blocking; parks the member when ``may_wait`` and none."""
        return self._subscription._poll(may_wait)  # noqa: SLF001 - as above

    def end(self, reason: str) -> None:
        self._subscription.close(reason)

    def close(self) -> None:
        self._subscription.close()


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
            gone client within that time. A stream that takes its connection over from
            the server draws its own interval once, from 80-100 % of this, so that
            streams served together do not all beat at the same moment.
        retry: the reconnection delay in milliseconds sent to the client first
            (``None``: leave the browser's default, about 3 s).
        retry_jitter: when wsgisse ends the stream on purpose (shutdown, lifetime), the
            farewell's ``retry`` is ``retry`` plus up to this many milliseconds, so that
            clients spread their reconnects.
        max_lifetime: end the stream after about this many seconds (a random 75-100 %
            of it, so that streams opened together do not all end together); the client
            reconnects at once, possibly to a less loaded worker. ``None``: no limit.
        on_close: called once, with the stream, when the stream is closed.
        fast_path: lets the publish loop write to the client's socket itself once the
            stream's first bytes are out, if the server proves to carry the stream
            unchanged (a :class:`~wsgisse.Subscription` source under gevent only; see
            ``_direct.py``).
        prelude: encoded events sent in the first chunk, right after the preamble and
            before any replayed or live event (an ``on_connect`` snapshot).

    The first chunk is ready at once, so that the server sends the headers and the
    browser fires ``open`` without waiting for an event. ``close()`` (called by the
    server) ends the subscription or the worker exactly once.

    Raises:
        ValueError: ``heartbeat`` or ``max_lifetime`` not positive.
        InvalidEventError: ``retry`` out of range.
    """

    #: The status line of an event stream.
    status = "200 OK"
    #: The response headers; see :data:`DEFAULT_HEADERS`.
    headers = DEFAULT_HEADERS

    def __init__(
        self,
        source: Subscription | MultiSubscription | Iterable[object],
        *,
        heartbeat: float | None = 15.0,
        retry: int | None = 3000,
        retry_jitter: int = 3000,
        max_lifetime: float | None = None,
        on_close: Callable[[EventStream], None] | None = None,
        fast_path: FastPath | None = None,
        prelude: bytes = b"",
    ) -> None:
        if heartbeat is not None and not heartbeat > 0:
            raise ValueError(f"heartbeat must be positive seconds or None, not {heartbeat!r}")
        if max_lifetime is not None and not max_lifetime > 0:
            raise ValueError(f"max_lifetime must be positive seconds or None, not {max_lifetime!r}")
        # The preamble carries the stream's starting position as its id (a browser takes
        # the id of an event without data and dispatches nothing), so that a client
        # dropped before its first event still resumes exactly where it started.
        position = source.last_event_id if isinstance(source, _POSITIONED) else None
        preamble = ServerSentEvent(comment="wsgisse", retry=retry, id=position or None).encode()
        self._preamble: bytes | None = preamble + prelude
        self._heartbeat = heartbeat
        self._retry = retry
        self._retry_jitter = retry_jitter
        self._ends_at = (
            None
            if max_lifetime is None
            else time.monotonic() + max_lifetime * random.uniform(0.75, 1.0)  # noqa: S311
        )
        self._on_close = on_close
        self._lock = native_lock()
        self._closed = False
        # Set when the connection is taken over: the server's close() that follows is
        # the end of its handler, not of the stream.
        self._handed_over = False
        self._end_reason: str | None = None
        self._served = 0
        self._last_sent = time.monotonic()
        # The publish loop's writer, once the socket is lent (see _next_chunk).
        self._direct: DirectWriter | None = None
        self._fast_path = fast_path if isinstance(source, Subscription) else None
        self._source: _Source
        if isinstance(source, Subscription):
            self._source = _SubscriptionSource(source)
        elif isinstance(source, MultiSubscription):
            self._source = source
        else:
            self._source = _IterableSource(source)
        _lifecycle.register(self)
        if _lifecycle.shutting_down():
            self.end("shutdown")

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> bytes:
        chunk = self._next_chunk()
        self._served += len(chunk)
        self._last_sent = time.monotonic()
        return chunk

    @property
    def bytes_sent(self) -> int:
        """Bytes written to the client so far (through the server or the publish loop)."""
        return self._served + (0 if self._direct is None else self._direct.bytes_sent)

    def _next_chunk(self) -> bytes:
        preamble = self._preamble
        if preamble is not None:
            self._preamble = None
            return preamble
        if self._fast_path is not None:
            self._lend_socket(self._fast_path)
        try:
            while True:
                try:
                    return self._source.get(True, self._wait_time())
                except queue.Empty:
                    if self._heartbeat_due():
                        return _HEARTBEAT
        except SubscriptionClosedError as ended:
            reason = self._end_reason or ended.reason
            with self._lock:
                self._end_reason = "ended"
            if reason in END_REASONS:
                return farewell(reason, self._retry, self._retry_jitter)
            raise StopIteration from None

    def _lend_socket(self, fast_path: FastPath) -> None:
        """Let the publish loop write to the socket, if the server carries us unchanged.

        Called once, between the server's write of the preamble and its next read: the
        server has written exactly what the stream returned, or it never will be lent.
        """
        self._fast_path = None
        writer = fast_path.writer_for(self, self._served)
        if writer is None or not isinstance(self._source, _SubscriptionSource):
            return
        self._direct = writer
        hub = current_hub() if fast_path.releases() else None
        if hub is None:
            self._source.lend_socket(writer)
            return
        writer.rebind(release_socket(writer.sock))
        if self._heartbeat is not None:
            # Each released stream beats on its own timer: drawn once from 80-100 % of
            # the interval, so that streams served together (every broadcast serves
            # them all at once) do not run their pumps in one burst that delays events.
            self._heartbeat *= random.uniform(0.8, 1.0)  # noqa: S311 - not a secret
        pump = Pump(hub, self._serve_released)
        self._handed_over = True
        self._source.hand_over(writer, pump)
        pump.wake()  # It takes what came meanwhile, and parks the member.
        raise ConnectionHandedOverError

    def _serve_released(self) -> float | None:
        """Write what is due on a connection taken over from the server (see ``_released``).

        Returns the seconds until it must run again (a heartbeat or the end of life is
        due), ``None`` when only a wake will need it, or ``-1`` once the stream is over.
        """
        writer = self._direct
        source = self._source
        assert writer is not None  # noqa: S101 - set before the pump exists
        assert isinstance(source, _SubscriptionSource)  # noqa: S101
        try:
            while True:
                self._wait_time()  # Ends the stream once its lifetime is over.
                chunk = source.take(False)
                if chunk is None and self._heartbeat_due():
                    chunk = _HEARTBEAT
                if chunk is None:
                    chunk = source.take(True)  # Parked, unless something came meanwhile.
                    if chunk is None:
                        return self._wait_time()
                writer.send(chunk)
        except SubscriptionClosedError as ended:
            reason = self._end_reason or ended.reason
            if reason in END_REASONS:
                with contextlib.suppress(OSError):
                    writer.send(farewell(reason, self._retry, self._retry_jitter))
        except OSError:
            pass  # The client is gone.
        except Exception:  # A defect must not leave the connection open for ever.
            log.exception("wsgisse: serving a released stream failed; closing it")
        self._handed_over = False
        try:
            self.close()
        finally:
            writer.finish()
        return -1

    def _last_traffic(self) -> float:
        """When the client was last written to, through the server or the publish loop."""
        direct = self._direct
        if direct is None:
            return self._last_sent
        return max(self._last_sent, direct.last_write)

    def _wait_time(self) -> float | None:
        """How long the next wait may last: until a heartbeat or the end of life is due."""
        now = time.monotonic()
        timeout = self._heartbeat
        if timeout is not None:
            timeout = max(timeout - (now - self._last_traffic()), 0.0)
        if self._ends_at is not None:
            remaining = self._ends_at - now
            if remaining <= 0:
                self.end("lifetime")  # The source now ends, and the farewell follows.
                return 0.0
            if timeout is None or remaining < timeout:
                timeout = remaining
        return timeout

    def _heartbeat_due(self) -> bool:
        """After a wait timed out: whether the connection has been silent a whole interval."""
        heartbeat = self._heartbeat
        return heartbeat is not None and time.monotonic() - self._last_traffic() >= heartbeat

    @property
    def closed(self) -> bool:
        """Whether the server has closed the stream."""
        return self._closed

    def end(self, reason: str) -> None:
        """End the stream on purpose, from any thread: it writes what is pending, then a
        :data:`~wsgisse.END_EVENT` farewell with a jittered ``retry``, then stops.

        ``reason`` is ``"shutdown"``, ``"lifetime"``, ``"capacity"`` or ``"revoked"``
        (see :data:`~wsgisse.END_EVENT`). Idempotent.
        """
        with self._lock:
            if self._end_reason is not None or self._closed:
                return
            self._end_reason = reason
        self._source.end(reason)

    def close(self) -> None:
        """End the stream and release what it holds; idempotent, safe from any thread."""
        with self._lock:
            if self._handed_over:
                self._handed_over = False
                return
            if self._closed:
                return
            self._closed = True
        self._source.close()
        _lifecycle.unregister(self)
        if self._on_close is not None:
            self._on_close(self)
