"""The reader of the Redis backend: one per backend object and process, for all channels.

What one run does is in ``_redis_loop`` (seeding, the XREAD of every followed stream
and of the control stream, delivery). Here: following and unfollowing channels, starting
and stopping runs (a greenlet under gevent, a thread otherwise), and the bounded waits
of the subscribers that need the reader to have read something.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from .._errors import UnsafeConcurrencyError
from .._sync import Waiter, make_waiter, native_thread_id, spawn_worker, wait_for, wake_all
from ._redis_loop import READ_MARGIN, Follower, ReaderLoop, logger

if TYPE_CHECKING:
    from .._channel import Channel
    from ._redis_replies import StreamId

__all__ = ["READ_MARGIN", "SYNC_TIMEOUT", "Reader"]

#: Seconds the first subscriber of a channel waits for the reader to fill the channel's
#: log from Redis, and a resuming subscriber for the reader to reach its
#: ``Last-Event-ID``: enough for a reconnection to Redis, below a browser's 3 s retry.
SYNC_TIMEOUT = 2.0

# How often an unanswered CLIENT UNBLOCK is sent again (see Reader._nudge_until).
_NUDGE_EVERY = 0.05


class _Stop(NamedTuple):
    """What stopping a reader takes, gathered under the lock and used outside it."""

    gen: int
    interrupt: Callable[[], None] | None
    thread_id: int | None
    waiter: Waiter | None
    client_id: int | None


class Reader(ReaderLoop):
    """Follows the streams of the local channels and feeds their logs.

    Args:
        connect: makes the reader's client; called in the reader, once per run. Its
            connection is the reader's own: it blocks in XREAD.
        unblock: ends a blocked XREAD of the given Redis client id (``CLIENT UNBLOCK``),
            so that a new stream is followed at once. Returns false only when Redis
            answered that no such client was blocked (worth another try a moment later);
            it must swallow Redis errors, returning true (no use trying again).
        block_timeout: seconds one XREAD blocks.
        name: for log messages.
        control_key: a stream read in every XREAD besides the channels', from the entries
            added after the reader started (see ``_redis_control``).
        on_control: called, outside the lock, with the raw entries of the control
            stream that one XREAD returned, before that reply's channel entries are
            appended to any log.
        on_round: called with the reader's client after each XREAD (at least every
            ``block_timeout``); it must swallow its own errors.
    """

    # -- what the backend calls -----------------------------------------------------------------

    def follow(self, channel: Channel, key: str) -> None:
        """Feed ``channel`` from stream ``key``; wait (bounded) until its log is seeded."""
        follower = Follower(channel, key)
        started_ms = time.time_ns() // 1_000_000
        with self._lock:
            if self._closed:
                return
            self._by_channel[channel] = follower
            self._followers.setdefault(key, []).append(follower)
            start = not self._running
            if start:
                self._running = True
                self._gen += 1
            gen = self._gen
            idle = None if start else self._waiter
        if start:
            self._start(gen)
        elif idle is not None:
            wake_all([idle])  # From a backoff or a wait for refused seeds: seed this now.

        def seeded() -> bool:
            return follower.last is not None or follower.detached

        # A running reader blocks in an XREAD of the other streams: end it, so that it
        # starts again with this one.
        if self._nudge_until(seeded, SYNC_TIMEOUT, lambda: None if start else self._client_id):
            return
        with self._lock:
            late = follower.last is None
            if late:
                follower.cut_ms = started_ms
        if late:
            logger.warning(
                "%s: could not read the history of %r from Redis within %s s; its "
                "subscribers get the events published from now on, once Redis answers",
                self._name,
                key,
                SYNC_TIMEOUT,
            )

    def feeds(self, channel: object) -> bool:
        """Whether ``channel`` is one this reader feeds (safe without the lock)."""
        return channel in self._by_channel

    def wait_past(self, channel: Channel, target: StreamId) -> bool:
        """Wait (at most :data:`SYNC_TIMEOUT`) until ``channel`` has been fed ``target``.

        Returns whether it has (also true for a channel that is not followed).
        """
        with self._lock:
            follower = self._by_channel.get(channel)
        if follower is None:
            return True

        def passed() -> bool:
            last = follower.last
            return follower.detached or (last is not None and last >= target)

        return self._wait(passed, SYNC_TIMEOUT)

    def unfollow(self, channel: Channel) -> None:
        """Stop feeding ``channel``; the last channel's unfollow stops the reader.

        That one returns once the reader has ended (within ``block_timeout`` plus
        :data:`READ_MARGIN` at most), so that no thread or greenlet outlives the channels.
        """
        stop = None
        with self._lock:
            follower = self._by_channel.pop(channel, None)
            if follower is None:
                return
            follower.detached = True
            siblings = self._followers[follower.key]
            siblings.remove(follower)
            if not siblings:
                del self._followers[follower.key]
                self._positions.pop(follower.key, None)
            if not self._followers:
                stop = self._stop_locked()
            waiters, self._progress = self._progress, []
        wake_all(waiters)
        if stop is not None:
            self._stop(stop, self._block_timeout + READ_MARGIN)

    def close(self, timeout: float) -> bool:
        """Unfollow every channel and wait up to ``timeout`` for the reader to end.

        Returns whether it ended. Idempotent; a closed reader follows nothing more.
        """
        with self._lock:
            self._closed = True
            for follower in self._by_channel.values():
                follower.detached = True
            self._by_channel.clear()
            self._followers.clear()
            self._positions.clear()
            stop = self._stop_locked()
            waiters, self._progress = self._progress, []
        wake_all(waiters)
        if stop is not None:
            return self._stop(stop, timeout)
        return self._wait(lambda: not self._alive, timeout)

    # -- starting and stopping ------------------------------------------------------------------

    def _start(self, gen: int) -> None:
        interrupt = spawn_worker(lambda: self._run(gen), name="wsgisse redis reader")
        with self._lock:
            if self._gen == gen:
                self._interrupt = interrupt

    def _stop_locked(self) -> _Stop | None:
        if not self._running:
            return None
        self._running = False
        # The next start reads only the revocations made from then on: a stream opened
        # meanwhile was authorized after the older ones.
        self._control_position = None
        stop = _Stop(self._gen, self._interrupt, self._thread_id, self._waiter, self._client_id)
        self._gen += 1  # The running reader sees it has become stale, and returns.
        self._interrupt = self._thread_id = self._waiter = self._client_id = None
        return stop

    def _stop(self, stop: _Stop, timeout: float) -> bool:
        """End a reader and wait (at most ``timeout``) until it has; return whether it has."""
        if stop.interrupt is not None and stop.thread_id == native_thread_id():
            # A greenlet of this thread's hub: killed wherever it waits, right now. A
            # greenlet cannot be killed from another thread, nor a thread at all: those
            # are woken from a backoff, or from their XREAD, and return at their check.
            stop.interrupt()
        elif stop.waiter is not None:
            wake_all([stop.waiter])
        return self._nudge_until(
            lambda: stop.gen not in self._alive, timeout, lambda: stop.client_id
        )

    # -- waiting ----------------------------------------------------------------------------------

    def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` (checked under the lock) or ``timeout``; return ``done()``."""
        try:
            waiter = make_waiter()
        except UnsafeConcurrencyError:
            # A channel closed from inside the gevent hub, where nothing may wait.
            with self._lock:
                return done()

        def poll(may_wait: bool) -> bool | None:
            with self._lock:
                if done():
                    return True
                if may_wait:
                    if waiter not in self._progress:
                        self._progress.append(waiter)
                elif waiter in self._progress:
                    self._progress.remove(waiter)
                return None

        try:
            return wait_for(poll, waiter, True, timeout)
        except queue.Empty:
            return False

    def _nudge_until(
        self, done: Callable[[], bool], timeout: float, client_id: Callable[[], int | None]
    ) -> bool:
        """Like :meth:`_wait`, ending the reader's blocked XREAD until Redis says it did.

        A ``CLIENT UNBLOCK`` that arrives between two XREADs ends nothing, and the next
        XREAD would block a whole ``block_timeout``: so it is sent again every
        ``_NUDGE_EVERY`` seconds until Redis answers that it ended one (or refuses it).
        ``client_id`` is read under the lock; ``None``: no reader to nudge (yet).
        """
        deadline = time.monotonic() + timeout
        nudged = False
        while True:
            remaining = deadline - time.monotonic()
            if not nudged:
                with self._lock:
                    target = client_id()
                if target is not None:
                    nudged = self._unblock(target)
            if self._wait(done, max(0.0, remaining if nudged else min(remaining, _NUDGE_EVERY))):
                return True
            if time.monotonic() >= deadline:
                return False
