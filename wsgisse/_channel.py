"""Channel and Subscription: publish from anywhere, fan out, replay, drop slow clients."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ._backend import MemoryBackend
from ._errors import ChannelClosedError, InvalidEventError, SubscriptionClosedError
from ._event import ServerSentEvent, _check_id
from ._fanout import Fanout, Member, SlowPolicy
from ._log import DEFAULT_MAX_BYTES, EventLog
from ._sync import Latch, make_waiter, wait_for, wake_all

if TYPE_CHECKING:
    from ._backend import Backend
    from ._direct import DirectWriter
    from ._sync import Waiter

__all__ = ["Channel", "Subscription"]


# Room for the id a channel or a backend assigns (ours and Redis' are under 32 characters).
_ID_ROOM = 32


def _epoch() -> str:
    """A prefix that makes this channel's ids unique to this channel object."""
    return f"{time.time_ns() // 1_000_000:x}{secrets.randbits(16):04x}"


class Channel:
    """A broadcast channel of server-sent events, with history for reconnecting clients.

    Every subscriber receives every event published after it subscribed, in order. This
    is not gevent's ``gevent.queue.Channel`` (a one-slot rendezvous between two
    greenlets): it is publish/subscribe, one to many.

    :meth:`publish` may be called from any thread or greenlet, including a native OS
    thread beside a gevent hub. Each event is encoded once; all subscribers share the
    bytes, and a subscriber that fell behind writes everything it missed in one write.

    Args:
        name: the channel's name (the Redis backend keys its stream on it).
        history: how many of the newest events a reconnecting client's
            ``Last-Event-ID`` can be replayed from (0: no replay). Default 1000.
        history_seconds: also forget, for replay, events older than this.
        history_bytes: the most bytes of encoded events the channel holds (for replay,
            and as every subscriber's backlog); the oldest go first. An event larger than
            this is refused. Default 16 MiB: a
            history of 1,000 small events needs about 1 MiB, and a worker holding dozens
            of busy channels stays within its memory.
        max_backlog: how many events a subscriber may fall behind before the slow-client
            policy applies (together with ``slow_after``). By default half the log, so
            that what a dropped client missed is still held when it reconnects.
        slow_after: a subscriber more than ``max_backlog`` events behind is slow only once
            the oldest event it has not taken waited this many seconds: a burst that a
            reading client is taking is not slowness. A subscriber whose next event is no
            longer held at all is slow at once. Default 5 s.
        on_slow: ``"disconnect"`` (the default) ends a slow subscriber's stream so that
            the browser reconnects with its ``Last-Event-ID`` and is replayed what it
            missed (or told it was lost); ``"skip"`` jumps it to the newest event and
            sends it :data:`~wsgisse.HISTORY_LOST_EVENT` instead.
        backend: where events go and come from; by default this process' memory.

    Raises:
        ValueError: a limit is negative or ``on_slow`` is not a known policy.
    """

    __slots__ = ("__weakref__", "_attach_latch", "_attached", "_backend", "_fanout", "name")

    def __init__(
        self,
        name: str = "default",
        *,
        history: int = 1000,
        history_seconds: float | None = None,
        history_bytes: int = DEFAULT_MAX_BYTES,
        max_backlog: int | None = None,
        slow_after: float = 5.0,
        on_slow: SlowPolicy = "disconnect",
        backend: Backend | None = None,
    ) -> None:
        if history < 0:
            raise ValueError(f"history must be 0 or more, not {history}")
        if max_backlog is None:
            max_backlog = max(history // 2, 100)
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, not {max_backlog}")
        if not slow_after >= 0:
            raise ValueError(f"slow_after must be 0 or more seconds, not {slow_after}")
        if on_slow not in ("disconnect", "skip"):
            raise ValueError(f"on_slow must be 'disconnect' or 'skip', not {on_slow!r}")
        self.name = name
        epoch = _epoch()
        # The log is also every subscriber's backlog, so it holds at least twice the
        # backlog: a client dropped as slow still finds what it missed when it returns.
        log = EventLog(
            max(history, 2 * max_backlog),
            replay_limit=history,
            replay_seconds=history_seconds,
            max_bytes=history_bytes,
            # The epoch alone names the place before the first event: the channel's own
            # ids all have a "-<n>" after it, so it is never one of them.
            origin_id=epoch,
        )
        self._fanout = Fanout(
            log, epoch=epoch, max_backlog=max_backlog, slow_after=slow_after, on_slow=on_slow
        )
        self._backend: Backend = MemoryBackend() if backend is None else backend
        # The backend's attach() runs once, before the first subscriber is in the log; the
        # subscribers that arrive meanwhile wait for it behind this latch. Guarded by the
        # fanout's lock, with which close() decides whether to detach.
        self._attach_latch: Latch | None = None
        self._attached = False

    def __repr__(self) -> str:
        fanout = self._fanout
        state = "closed" if fanout.closed else f"{len(fanout.members)} subscribers"
        return f"<Channel {self.name!r} {state}>"

    @property
    def backend(self) -> Backend:
        """Where the channel's events go and come from (see :class:`~wsgisse.Backend`)."""
        return self._backend

    @property
    def max_backlog(self) -> int:
        """How many events a subscriber may fall behind before ``on_slow`` applies."""
        return self._fanout.max_backlog

    @property
    def on_slow(self) -> SlowPolicy:
        """What happens to a subscriber that falls ``max_backlog`` events behind."""
        return self._fanout.on_slow

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._fanout.closed

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return len(self._fanout.members)

    def counters(self) -> dict[str, int]:
        """Totals since the channel was made: ``events_published``, ``replays``
        (subscribers resumed from history), ``history_lost`` (resumes that could not be
        served), ``slow_dropped`` (subscribers that fell too far behind) and
        ``direct_writes`` (deliveries the publish loop wrote to a socket itself)."""
        return self._fanout.counters()

    @property
    def last_event_id(self) -> str | None:
        """The id of the newest event, or ``None`` before the first."""
        fanout = self._fanout
        with fanout.lock:
            return fanout.log.last_id()

    @property
    def log_capacity(self) -> int:
        """How many events the log holds: the history, and every subscriber's backlog.

        A shared backend fills a new channel's log with this many of the newest events.
        """
        return self._fanout.log.capacity

    def publish(
        self,
        data: object,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        audience: Iterable[str] | None = None,
    ) -> ServerSentEvent:
        """Send an event to every subscriber and keep it in the history.

        ``data`` is ``str``, UTF-8 ``bytes`` or any JSON-serialisable object. When ``id``
        is omitted the channel assigns one, unique and ordered within the channel.
        ``audience`` restricts the event to the subscribers of those users (the names an
        ``authorize`` hook returned; see :class:`~wsgisse.SSEApp`), live and replayed
        alike; anonymous subscribers never receive it.

        Returns:
            The event as sent, with its id.

        Raises:
            InvalidEventError: a field cannot be carried by the event-stream format, the
                data is ``None`` (a browser dispatches nothing without data), or ``id`` is
                empty or already in the history.
            ChannelClosedError: the channel was closed.
            BackendUnavailableError: the backend (Redis) could not take the event.
        """
        if data is None:
            raise InvalidEventError("data", data, "a browser dispatches no event without data")
        if id == "":
            raise InvalidEventError("id", id, "an empty id resets a client's Last-Event-ID")
        body = ServerSentEvent(data, event=event, retry=retry)
        if id is not None:
            id = _check_id(id)  # Before anything is sent.
        self._check_size(body, id)
        if self._fanout.closed:
            raise ChannelClosedError(f"channel {self.name!r} is closed")
        restricted = None if audience is None else frozenset(audience)
        if restricted is None:
            sent_id = self._backend.publish(self, body, id)
        else:
            sent_id = self._backend.publish(self, body, id, audience=restricted)
        return body._identified(sent_id)  # noqa: SLF001 - the event module's own helper

    def _check_size(self, body: ServerSentEvent, event_id: str | None) -> None:
        # Checked before the backend takes it: a shared backend would store an event that
        # no process' log could then hold.
        size = (
            len(body.encode()) + len("id: \n") + (_ID_ROOM if event_id is None else len(event_id))
        )
        limit = self._fanout.log.max_bytes
        if size > limit:
            raise InvalidEventError(
                "data", body.data, f"{size} bytes encoded, more than history_bytes={limit}"
            )

    def append(
        self,
        body: bytes,
        event_id: str | None = None,
        audience: frozenset[str] | None = None,
    ) -> str:
        """Add an encoded event to the log and wake the subscribers (for backends).

        ``body`` is an encoded event without an id line. The channel appends the id
        line, assigning an id when ``event_id`` is ``None``. ``audience``: see
        :meth:`publish`.

        Returns:
            The event's id.

        Raises:
            InvalidEventError: ``event_id`` is already in the history.
        """
        return self._fanout.append(body, event_id, audience)

    def subscribe(
        self, last_event_id: str | None = None, *, user: str | None = None
    ) -> Subscription:
        """Start receiving the events published from now on.

        With ``last_event_id`` (a reconnecting browser's ``Last-Event-ID``) the
        subscription first yields exactly the events after it, then the live ones, with
        no gap and no duplicate. An id the history no longer holds, or never held, is
        answered with a :data:`~wsgisse.HISTORY_LOST_EVENT` event first. ``user`` names the
        subscriber for events published with an ``audience``.

        Raises:
            ChannelClosedError: the channel was closed.
            UnsafeConcurrencyError: called from inside the gevent hub.
        """
        return Subscription(self, self._join(last_event_id, make_waiter(), user=user))

    def _join(
        self,
        last_event_id: str | None,
        waiter: Waiter,
        *,
        from_start: bool = False,
        user: str | None = None,
    ) -> Member:
        """A place in the channel for a subscriber that waits on ``waiter``.

        Several places (one per channel of a multiplexed stream) may share one waiter.
        ``from_start``: see :meth:`Fanout.join`.

        Raises:
            ChannelClosedError: the channel was closed.
        """
        if not self._attached:
            self._attach()
        if last_event_id is not None:
            self._backend.prepare_resume(self, last_event_id)
        try:
            return self._fanout.join(last_event_id, waiter, from_start=from_start, user=user)
        except ChannelClosedError:
            raise ChannelClosedError(f"channel {self.name!r} is closed") from None

    def close(self) -> None:
        """End every subscription (after what it has pending) and refuse new ones.

        Idempotent. Streams served from the channel end cleanly; a closed channel is
        answered with ``204 No Content`` by :class:`~wsgisse.SSEMiddleware`, which tells a
        browser to stop reconnecting.
        """
        fanout = self._fanout
        with fanout.lock:  # With _attach's finally: exactly one of them detaches.
            ended = fanout.close_locked()
            attached = self._attached
        if ended is None:
            return
        wake_all([member.waiter for member in ended])
        if attached:
            self._backend.detach(self)

    def _attach(self) -> None:
        """Run the backend's attach() once, before any subscriber is in the log.

        A shared backend fills the log in attach(): a subscriber placed at the head
        before that would be sent the old events as new ones, so the first subscribers
        to arrive together wait for the one running it.
        """
        with self._fanout.lock:
            if self._attached:
                return
            latch = self._attach_latch
            first = latch is None
            if latch is None:
                latch = self._attach_latch = Latch()
        if not first:
            latch.wait()
            return
        try:
            self._backend.attach(self)
        finally:
            with self._fanout.lock:
                self._attached = True
                self._attach_latch = None
                closed = self._fanout.closed
            latch.open()
            if closed:
                self._backend.detach(self)  # close() ran while attaching: it saw no attach.

    def end_subscriptions(self, reason: str) -> int:
        """End every open subscription with ``reason`` and return how many there were.

        The channel stays open for new subscribers.
        """
        return self._fanout.end_all(reason)


class Subscription:
    """One subscriber's place in a channel: a cursor into its log.

    Made by :meth:`Channel.subscribe`. :meth:`get` returns every frame the subscriber has
    not had yet, joined into one ``bytes`` ready to write. Iterating yields the same until
    the subscription ends.
    """

    __slots__ = ("__weakref__", "_channel", "_member")

    def __init__(self, channel: Channel, member: Member) -> None:
        self._channel = channel
        self._member = member

    def __repr__(self) -> str:
        member = self._member
        state = member.end_reason or "open"
        return f"<Subscription to {self._channel.name!r} at {member.cursor} {state}>"

    @property
    def channel(self) -> Channel:
        """The channel subscribed to."""
        return self._channel

    @property
    def closed(self) -> bool:
        """Whether the subscription has ended (it may still hold frames to read)."""
        return self._member.end_reason is not None

    @property
    def end_reason(self) -> str | None:
        """Why the subscription ended (see :class:`SubscriptionClosedError`), or ``None``."""
        return self._member.end_reason

    @property
    def last_event_id(self) -> str:
        """The ``Last-Event-ID`` that resumes this subscription exactly where it is now.

        The id of the last event handed over, or, before any, of the point where the
        subscription started (for an empty channel, the channel's own origin id), so a
        client that has received no event yet can still resume without a gap. ``""``
        when the channel no longer holds that event.
        """
        member = self._member
        return member.fanout.position(member)

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Return every encoded frame not yet returned, in one ``bytes``.

        Blocks (a greenlet parks, a thread waits) until there is something, like
        ``queue.Queue.get``.

        Raises:
            queue.Empty: nothing arrived within ``timeout``, or at once when not ``block``.
            SubscriptionClosedError: the subscription ended and nothing is left; its
                ``reason`` says why (``"slow"``: it fell more than ``max_backlog`` events
                behind and was dropped, so that the client resumes from history).
        """
        return wait_for(self._poll, self._member.waiter, block, timeout)

    def _poll(self, may_wait: bool) -> bytes | None:
        member = self._member
        return member.fanout.take(member, may_wait)

    def _lend_socket(self, writer: DirectWriter) -> None:
        """Let the publish loop write to the client's socket (see ``_fanout``)."""
        self._member.fanout.lend_socket(self._member, writer)

    def _hand_over(self, writer: DirectWriter, waiter: Waiter) -> None:
        """The stream took the connection over from the server (see ``_released``)."""
        self._member.fanout.hand_over(self._member, writer, waiter)

    def close(self, reason: str = "closed") -> None:
        """End the subscription; a thread or greenlet blocked in :meth:`get` returns.

        Idempotent, and safe to call from any thread.
        """
        self._member.fanout.end(self._member, reason)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                yield self.get()
            except SubscriptionClosedError:
                return

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
