"""Channel and Subscription: publish from anywhere, fan out, replay, drop slow clients."""

from __future__ import annotations

import json
import queue
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ._backend import MemoryBackend
from ._direct import sweep
from ._errors import ChannelClosedError, InvalidEventError, SubscriptionClosedError
from ._event import ServerSentEvent, _check_id
from ._log import EventLog
from ._sync import Waiter, make_waiter, native_lock, native_thread_id, wake_all

if TYPE_CHECKING:
    from ._backend import Backend
    from ._direct import DirectWriter

__all__ = ["HISTORY_LOST_EVENT", "Channel", "Subscription"]

#: The event type a subscriber receives first when its ``Last-Event-ID`` cannot be
#: resumed: the id is unknown (another process, a restart) or older than the history the
#: channel holds. Its data is JSON: ``{"lastEventId": "...", "oldestId": "..." or null}``.
#: Listen for it with ``source.addEventListener("wsgisse-history-lost", ...)`` and reload
#: whatever state the page shows.
HISTORY_LOST_EVENT = "wsgisse-history-lost"

SlowPolicy = Literal["disconnect", "skip"]


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
        max_backlog: how many events a subscriber may fall behind before the slow-client
            policy applies. By default half the log, so that what a dropped client missed
            is still held when it reconnects (after its ``retry`` delay).
        on_slow: ``"disconnect"`` (the default) ends a slow subscriber's stream so that
            the browser reconnects with its ``Last-Event-ID`` and is replayed what it
            missed; ``"skip"`` jumps it to the newest event and sends it
            :data:`HISTORY_LOST_EVENT` instead.
        backend: where events go and come from; by default this process' memory.

    Raises:
        ValueError: a limit is negative or ``on_slow`` is not a known policy.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        history: int = 1000,
        history_seconds: float | None = None,
        max_backlog: int | None = None,
        on_slow: SlowPolicy = "disconnect",
        backend: Backend | None = None,
    ) -> None:
        if history < 0:
            raise ValueError(f"history must be 0 or more, not {history}")
        if max_backlog is None:
            max_backlog = max(history // 2, 100)
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, not {max_backlog}")
        if on_slow not in ("disconnect", "skip"):
            raise ValueError(f"on_slow must be 'disconnect' or 'skip', not {on_slow!r}")
        self.name = name
        self.max_backlog = max_backlog
        self.on_slow: SlowPolicy = on_slow
        self._lock = native_lock()
        # The log is also every subscriber's backlog, so it holds at least twice the
        # backlog: a client dropped as slow still finds what it missed when it returns.
        self._log = EventLog(
            max(history, 2 * max_backlog), replay_limit=history, replay_seconds=history_seconds
        )
        self._epoch = _epoch()
        self._subscribers: set[Subscription] = set()
        # Subscriptions waiting for the next event. A dict, not a list: parking twice (after
        # every heartbeat timeout) keeps one entry, and a closed subscription leaves at once.
        self._parked: dict[Subscription, None] = {}
        self._closed = False
        self._counts = {
            "events_published": 0,
            "replays": 0,
            "history_lost": 0,
            "slow_dropped": 0,
            "direct_writes": 0,
        }
        if backend is None:
            backend = MemoryBackend()
        self._backend = backend
        self._attached = False
        # While the first subscriber runs the backend's attach(), the others wait here.
        self._attach_waiters: list[Waiter] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._subscribers)} subscribers"
        return f"<Channel {self.name!r} {state}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    def counters(self) -> dict[str, int]:
        """Totals since the channel was made: ``events_published``, ``replays``
        (subscribers resumed from history), ``history_lost`` (resumes that could not be
        served), ``slow_dropped`` (subscribers that fell too far behind) and
        ``direct_writes`` (deliveries the publish loop wrote to a socket itself)."""
        with self._lock:
            return dict(self._counts)

    @property
    def last_event_id(self) -> str | None:
        """The id of the newest event, or ``None`` before the first."""
        with self._lock:
            return self._log.last_id()

    @property
    def log_capacity(self) -> int:
        """How many events the log holds: the history, and every subscriber's backlog.

        A shared backend fills a new channel's log with this many of the newest events.
        """
        return self._log.capacity

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
        if self._closed:
            raise ChannelClosedError(f"channel {self.name!r} is closed")
        restricted = None if audience is None else frozenset(audience)
        if restricted is None:
            sent_id = self._backend.publish(self, body, id)
        else:
            sent_id = self._backend.publish(self, body, id, audience=restricted)
        return body._identified(sent_id)  # noqa: SLF001 - the event module's own helper

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
        now = time.monotonic()
        with self._lock:
            log = self._log
            if event_id is None:
                event_id = f"{self._epoch}-{log.head + 1}"
            elif event_id in log:
                raise InvalidEventError("id", event_id, "already used in the channel's history")
            frame = b"%sid: %s\n\n" % (body[:-1], event_id.encode())
            log.append(event_id, frame, now, audience)
            self._counts["events_published"] += 1
            parked, self._parked = self._parked, {}
        if parked:
            self._deliver(list(parked))
        return event_id

    def _deliver(self, parked: list[Subscription]) -> None:
        """Wake the parked subscribers, or write to their sockets from one loop."""
        me = native_thread_id()
        woken: list[Waiter] = []
        here: list[Subscription] = []
        remote: dict[Any, list[Subscription]] = {}
        for subscription in parked:
            waiter = subscription._waiter  # noqa: SLF001
            if subscription._direct is None:  # noqa: SLF001
                woken.append(waiter)
            elif waiter.thread_id == me:
                here.append(subscription)
            else:
                remote.setdefault(waiter.hub, []).append(subscription)  # type: ignore[attr-defined]
        if woken:
            wake_all(woken)
        if here:
            sweep(self, here)
        for hub, subscriptions in remote.items():
            # The loop must run on the subscribers' own thread: hand it over.
            hub.loop.run_callback_threadsafe(sweep, self, subscriptions)

    def subscribe(
        self, last_event_id: str | None = None, *, user: str | None = None
    ) -> Subscription:
        """Start receiving the events published from now on.

        With ``last_event_id`` (a reconnecting browser's ``Last-Event-ID``) the
        subscription first yields exactly the events after it, then the live ones, with
        no gap and no duplicate. An id the history no longer holds, or never held, is
        answered with a :data:`HISTORY_LOST_EVENT` event first. ``user`` names the
        subscriber for events published with an ``audience``.

        Raises:
            ChannelClosedError: the channel was closed.
            UnsafeConcurrencyError: called from inside the gevent hub.
        """
        return self._subscribe(last_event_id, make_waiter(), user=user)

    def _subscribe(
        self,
        last_event_id: str | None,
        waiter: Waiter,
        *,
        from_start: bool = False,
        user: str | None = None,
    ) -> Subscription:
        """Subscribe with a given waiter (several subscriptions may share one).

        ``from_start``: resume before the channel's first event ever (a multiplexed
        client that subscribed while this channel was still empty).
        """
        if not self._attached:
            self._attach(waiter)
        if last_event_id is not None:
            self._backend.prepare_resume(self, last_event_id)
        now = time.monotonic()
        with self._lock:
            if self._closed:
                raise ChannelClosedError(f"channel {self.name!r} is closed")
            prelude = b""
            if from_start:
                cursor = 0
                if self._log.oldest > 0 or len(self._log) > self._log.replay_limit:
                    cursor = self._log.head
                    prelude = self._lost_notice("")
            elif last_event_id is None:
                cursor = self._log.head
            else:
                cursor, lost = self._log.resume_after(last_event_id, now)
                if lost:
                    prelude = self._lost_notice(last_event_id)
                    self._counts["history_lost"] += 1
                else:
                    self._counts["replays"] += 1
            subscription = Subscription(self, cursor, waiter, prelude, self._log.head, user)
            self._subscribers.add(subscription)
        return subscription

    def close(self) -> None:
        """End every subscription (after what it has pending) and refuse new ones.

        Idempotent. Streams served from the channel end cleanly; a closed channel is
        answered with ``204 No Content`` by :class:`~wsgisse.SSEMiddleware`, which tells a
        browser to stop reconnecting.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            parked = list(self._subscribers)
            for subscription in parked:
                subscription._end_locked("channel-closed")  # noqa: SLF001
            attached = self._attached
        wake_all([subscription._waiter for subscription in parked])  # noqa: SLF001
        if attached:
            self._backend.detach(self)

    def _attach(self, waiter: Waiter) -> None:
        """Run the backend's attach() once, before any subscriber is in the log.

        A shared backend fills the log in attach(): a subscriber placed at the head
        before that would be sent the old events as new ones, so the first subscribers
        to arrive together wait for the one running it.
        """
        with self._lock:
            done = self._attached
            others = self._attach_waiters
            if not done:
                if others is None:
                    self._attach_waiters = []
                else:
                    others.append(waiter)
        if done:
            return
        if others is not None:
            while not self._attached:
                waiter.wait(None)  # Spurious wakes are harmless: get() checks again.
            return
        try:
            self._backend.attach(self)
        finally:
            with self._lock:
                self._attached = True
                waiters, self._attach_waiters = self._attach_waiters or [], None
                closed = self._closed
            wake_all(waiters)
            if closed:
                self._backend.detach(self)  # close() ran while attaching: it saw no attach.

    def end_subscriptions(self, reason: str) -> int:
        """End every open subscription with ``reason`` and return how many there were.

        The channel stays open for new subscribers.
        """
        with self._lock:
            ended = list(self._subscribers)
            for subscription in ended:
                subscription._end_locked(reason)  # noqa: SLF001
        wake_all([subscription._waiter for subscription in ended])  # noqa: SLF001
        return len(ended)

    def _lost_notice(self, last_event_id: str) -> bytes:
        data = json.dumps(
            {"lastEventId": last_event_id, "oldestId": self._log.oldest_id()},
            separators=(",", ":"),
        )
        return ServerSentEvent(data, event=HISTORY_LOST_EVENT).encode()


class Subscription:
    """One subscriber's place in a channel: a cursor into its log.

    Made by :meth:`Channel.subscribe`. :meth:`get` returns every frame the subscriber has
    not had yet, joined into one ``bytes`` ready to write. Iterating yields the same until
    the subscription ends.
    """

    __slots__ = (
        "__weakref__",
        "_channel",
        "_cursor",
        "_direct",
        "_end_head",
        "_end_reason",
        "_live_from",
        "_prelude",
        "_user",
        "_waiter",
    )

    def __init__(
        self,
        channel: Channel,
        cursor: int,
        waiter: Waiter,
        prelude: bytes,
        live_from: int,
        user: str | None = None,
    ) -> None:
        self._channel = channel
        self._user = user
        # Set by the stream once its first bytes are out, where the publish loop may
        # write to the client's socket itself (see _direct.py).
        self._direct: DirectWriter | None = None
        self._cursor = cursor
        # Frames before live_from are a replay the subscriber asked for: they never count
        # as backlog, or a client resuming a long gap would be dropped as slow at once.
        self._live_from = live_from
        self._waiter = waiter
        self._prelude = prelude
        self._end_reason: str | None = None
        # The head when the subscription ended: what was published before is still
        # delivered, nothing published after (a revoked client must not get one more).
        self._end_head: int | None = None

    def __repr__(self) -> str:
        state = self._end_reason or "open"
        return f"<Subscription to {self._channel.name!r} at {self._cursor} {state}>"

    @property
    def channel(self) -> Channel:
        """The channel subscribed to."""
        return self._channel

    @property
    def closed(self) -> bool:
        """Whether the subscription has ended (it may still hold frames to read)."""
        return self._end_reason is not None

    @property
    def end_reason(self) -> str | None:
        """Why the subscription ended (see :class:`SubscriptionClosedError`), or ``None``."""
        return self._end_reason

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
        channel = self._channel
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            direct = self._direct
            if direct is not None and direct.remainder:
                # What the publish loop could not send goes first, before anything else.
                try:
                    direct.flush()
                except OSError:
                    self.close("gone")
            with channel._lock:  # noqa: SLF001
                # Awake: from now until parked again the server may write to the socket,
                # so the publish loop must not.
                channel._parked.pop(self, None)  # noqa: SLF001
                chunk = self._take_locked()
                if chunk:
                    return chunk
                if self._end_reason is not None:
                    raise SubscriptionClosedError(self._end_reason)
                remaining = None if deadline is None else deadline - time.monotonic()
                if not block or (remaining is not None and remaining <= 0):
                    raise queue.Empty
                self._park_locked()
            self._waiter.wait(remaining)

    def _take_locked(self) -> bytes:
        prelude, frames, _ = self._take_frames_locked()
        if prelude:
            return prelude + b"".join(frames)
        if not frames:
            return b""
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def _take_frames_locked(self) -> tuple[bytes, Sequence[bytes], int]:
        """(prelude, frames not yet taken, the sequence number of the first frame)."""
        channel = self._channel
        log = channel._log  # noqa: SLF001
        cursor = self._cursor
        head = log.head if self._end_head is None else min(log.head, self._end_head)
        prelude = self._prelude
        self._prelude = b""
        if cursor >= head:
            return prelude, (), cursor
        if head - max(cursor, self._live_from) > channel.max_backlog or cursor < log.oldest:
            channel._counts["slow_dropped"] += 1  # noqa: SLF001
            if channel.on_slow == "disconnect":
                self._end_locked("slow")
                return b"", (), cursor
            self._cursor = head
            return channel._lost_notice(log.id_at(cursor - 1) or ""), (), head  # noqa: SLF001
        self._cursor = head
        return prelude, log.visible_frames(cursor, head, self._user), cursor

    def _park_locked(self) -> None:
        """Ask to be woken by the channel's next event (the channel's lock is held)."""
        self._channel._parked[self] = None  # noqa: SLF001

    def _end_locked(self, reason: str) -> None:
        if self._end_reason is None:
            self._end_reason = reason
            self._end_head = self._channel._log.head  # noqa: SLF001
            self._channel._subscribers.discard(self)  # noqa: SLF001
            self._channel._parked.pop(self, None)  # noqa: SLF001

    def close(self, reason: str = "closed") -> None:
        """End the subscription; a thread or greenlet blocked in :meth:`get` returns.

        Idempotent, and safe to call from any thread.
        """
        with self._channel._lock:  # noqa: SLF001
            if self._end_reason is not None:
                return
            self._end_locked(reason)
        wake_all([self._waiter])

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
