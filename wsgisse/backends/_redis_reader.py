"""The reader of the Redis backend: one per backend object and process, for all channels.

The reader is the only writer of the local channels' logs. It seeds a newly followed
channel (XREVRANGE: the newest entries, as many as the log holds), then follows every
followed stream with one blocking ``XREAD ... STREAMS k1 k2 ... id1 id2`` and appends each
entry to every local channel of that stream. Because seeding and following happen in one
place, a channel's log receives every entry once, in stream order, without a gap:

* each followed channel remembers the last stream id appended to it (``last``) and takes
  only entries after it, so a channel seeded past the stream's read position does not get
  an entry twice;
* the XREAD of each stream resumes from the last id read (``positions``), so after a
  lost connection nothing still held by Redis is skipped or repeated.

State is guarded by one native lock (see ``wsgisse._sync``), held for dict and list work
and ``Channel.append`` only, never across a Redis call or a logging call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import redis

from .._errors import InvalidEventError, UnsafeConcurrencyError
from .._sync import Waiter, make_waiter, native_lock, native_thread_id, spawn_worker, wake_all
from ._redis_replies import Entry, StreamId, format_id, parse_id, read_entries, split_streams

if TYPE_CHECKING:
    from redis.typing import KeyT, StreamIdT

    from .._channel import Channel

__all__ = ["READ_MARGIN", "SYNC_TIMEOUT", "Reader"]

logger = logging.getLogger("wsgisse.redis")

#: Seconds the first subscriber of a channel waits for the reader to fill the channel's
#: log from Redis, and a resuming subscriber for the reader to reach its
#: ``Last-Event-ID``: enough for a reconnection to Redis, below a browser's 3 s retry.
SYNC_TIMEOUT = 2.0

#: The reader's socket timeout is its block_timeout plus this: the XREAD reply is due
#: after block_timeout, and a Redis that vanished without a reset is noticed this later.
READ_MARGIN = 2.0

# Entries fetched per stream per XREAD: bounds the memory of one reply.
_READ_BATCH = 1000
# Reconnection delays double from the first to the cap. The cap bounds how late a
# restarted Redis is noticed; the first keeps a blip short.
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0
# How often an unanswered CLIENT UNBLOCK is sent again (see Reader._nudge_until).
_NUDGE_EVERY = 0.05
# While Redis stays unreachable the reader says so at most this often.
_STILL_DOWN_EVERY = 60.0


class _Follower:
    """One local channel that the reader feeds, and how far it has been fed."""

    __slots__ = ("channel", "cut_ms", "detached", "key", "last", "refused")

    def __init__(self, channel: Channel, key: str) -> None:
        self.channel = channel
        self.key = key
        # The newest stream id appended to the channel's log; None until seeded.
        self.last: StreamId | None = None
        # Set when the first subscriber stopped waiting for the seed (Redis was down):
        # subscribers are in the log by then, so the late seed appends only the entries
        # from that wall-clock millisecond on, as new events, and no old ones.
        self.cut_ms: int | None = None
        self.detached = False
        # Whether Redis refused its seed (said once in the log, then retried quietly).
        self.refused = False


class _Stop(NamedTuple):
    """What stopping a reader takes, gathered under the lock and used outside it."""

    gen: int
    interrupt: Callable[[], None] | None
    thread_id: int | None
    waiter: Waiter | None
    client_id: int | None


class Reader:
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

    def __init__(
        self,
        *,
        connect: Callable[[], redis.Redis],
        unblock: Callable[[int], bool],
        block_timeout: float,
        name: str,
        control_key: str | None = None,
        on_control: Callable[[Any], None] | None = None,
        on_round: Callable[[redis.Redis], None] | None = None,
    ) -> None:
        self._connect = connect
        self._on_round = on_round
        self._control_key = control_key
        self._on_control = on_control
        self._unblock = unblock
        self._block_timeout = block_timeout
        self._name = name
        self._lock = native_lock()
        # Everything below is guarded by _lock.
        self._closed = False
        self._by_channel: dict[Channel, _Follower] = {}
        self._followers: dict[str, list[_Follower]] = {}
        # The last id read from each followed stream: where its XREAD resumes.
        # (Typed as redis-py's XREAD takes it; the keys and ids are str.)
        self._positions: dict[KeyT, StreamIdT] = {}
        # Woken whenever the reader seeds or delivers (follow and wait_past wait on it).
        self._progress: list[Waiter] = []
        self._gen = 0  # bumped to start a reader run, and to stop it
        self._running = False
        self._alive: set[int] = set()  # the runs (gens) not returned yet, stopping ones too
        self._client_id: int | None = None
        self._thread_id: int | None = None
        self._waiter: Waiter | None = None
        self._interrupt: Callable[[], None] | None = None
        # Where the control stream's XREAD resumes; None until read at a reader's start.
        self._control_position: str | None = None

    # -- what the backend calls -----------------------------------------------------------------

    def follow(self, channel: Channel, key: str) -> None:
        """Feed ``channel`` from stream ``key``; wait (bounded) until its log is seeded."""
        follower = _Follower(channel, key)
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
        deadline = time.monotonic() + timeout
        try:
            waiter = make_waiter()
        except UnsafeConcurrencyError:
            # A channel closed from inside the gevent hub, where nothing may wait.
            with self._lock:
                return done()
        while True:
            with self._lock:
                if done():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if waiter in self._progress:
                        self._progress.remove(waiter)
                    return False
                if waiter not in self._progress:
                    self._progress.append(waiter)
            waiter.wait(remaining)

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

    def _woken_locked(self) -> list[Waiter]:
        waiters, self._progress = self._progress, []
        return waiters

    # -- the reader -----------------------------------------------------------------------------

    def _run(self, gen: int) -> None:
        client: redis.Redis | None = None
        with self._lock:
            # Counted here, not when spawned: a greenlet killed before it ever ran has
            # nothing to end, and must not be waited for.
            self._alive.add(gen)
        try:
            waiter = make_waiter()
            with self._lock:
                if self._gen == gen:
                    self._thread_id = native_thread_id()
                    self._waiter = waiter
            client = self._connect()
            self._follow(client, waiter, gen)
        finally:
            if client is not None:
                client.close()
            with self._lock:
                self._alive.discard(gen)
                if self._gen == gen:  # Ended by something other than a stop (interpreter exit).
                    self._running = False
                    self._interrupt = self._thread_id = self._waiter = self._client_id = None
                waiters = self._woken_locked()
            wake_all(waiters)

    def _follow(self, client: redis.Redis, waiter: Waiter, gen: int) -> None:
        """Seed new followers and deliver what XREAD reads, until this run is stopped."""
        block_ms = _block_ms(client, self._block_timeout)
        failures = 0
        down_since = last_said = 0.0
        while True:
            with self._lock:
                if self._gen != gen:
                    return
                pending = [f for fs in self._followers.values() for f in fs if f.last is None]
                know_id = self._client_id is not None
            try:
                self._round(client, waiter, gen, pending, block_ms, know_id=know_id)
            except Exception as exc:  # noqa: BLE001 - the reader must outlive any failure
                with self._lock:
                    if self._gen == gen:
                        self._client_id = None  # Fetched again on the next connection.
                failures += 1
                now = time.monotonic()
                if failures == 1:
                    down_since = last_said = now
                    self._report_failure(exc, "")
                elif now - last_said >= _STILL_DOWN_EVERY:
                    last_said = now
                    self._report_failure(exc, f" (for {now - down_since:.0f} s)")
                waiter.wait(min(_BACKOFF_FIRST * 2 ** min(failures - 1, 16), _BACKOFF_MAX))
                continue
            if failures:
                logger.info(
                    "%s: Redis answers again after %.1f s; following on from the last ids read",
                    self._name,
                    time.monotonic() - down_since,
                )
                failures = 0

    def _round(
        self,
        client: redis.Redis,
        waiter: Waiter,
        gen: int,
        pending: list[_Follower],
        block_ms: int,
        *,
        know_id: bool,
    ) -> None:
        """One turn of the reader: seed the new followers, then one blocking XREAD."""
        if not know_id:
            client_id = int(client.client_id())
            with self._lock:
                if self._gen == gen:
                    self._client_id = client_id
        if self._control_key is not None and self._control_position is None:
            # Before any seed: a revocation made after a channel's history was read
            # must be read too.
            self._start_control(client, gen)
        for follower in pending:
            self._seed(client, follower, gen)
        with self._lock:
            streams = dict(self._positions)  # With the streams just seeded.
            control = self._control_position
        if not streams:  # Only seeds that Redis refused: try them again in a while.
            waiter.wait(self._block_timeout)
            return
        if self._control_key is not None and control is not None:
            streams = {self._control_key: control, **streams}
        reply = client.xread(streams, count=_READ_BATCH, block=block_ms)
        self._deliver(self._take_control(split_streams(reply), gen), gen)
        if self._on_round is not None:
            self._on_round(client)

    def _start_control(self, client: redis.Redis, gen: int) -> None:
        """Read from the control stream's newest entry on (or from its start if empty)."""
        newest = read_entries(client.xrevrange(self._control_key or "", count=1))
        with self._lock:
            if self._gen == gen:
                self._control_position = newest[0].text if newest else "0-0"

    def _take_control(
        self, streams: list[tuple[str, Any]], gen: int
    ) -> list[tuple[str, list[Entry]]]:
        """Hand the control entries to ``on_control``; return the channels' entries.

        When the control stream's part of the reply is a full batch, more control entries
        may be waiting that are older than some channel entries of this reply: those are
        left for the next XREAD (their positions do not move), so that no event is
        appended before a revocation that preceded it.
        """
        channels = []
        control: Any = None
        for key, raw in streams:
            if key == self._control_key:
                control = raw
            else:
                entries = read_entries(raw)
                if entries:
                    channels.append((key, entries))
        if control:
            entries = read_entries(control)
            if entries and self._on_control is not None:
                self._on_control(control)
            with self._lock:
                if entries and self._gen == gen:
                    self._control_position = entries[-1].text
            if len(control) >= _READ_BATCH:
                return []
        return channels

    def _report_failure(self, exc: Exception, how_long: str) -> None:
        if isinstance(exc, redis.RedisError):
            logger.warning(
                "%s: the reader cannot read from Redis%s (%s); retrying every %s s at most",
                self._name,
                how_long,
                exc,
                _BACKOFF_MAX,
            )
        else:
            logger.error("%s: the reader failed%s; retrying", self._name, how_long, exc_info=exc)

    def _seed(self, client: redis.Redis, follower: _Follower, gen: int) -> None:
        """Fill a new follower's log with the newest entries of its stream.

        A refusal (the key holds no stream, an ACL forbids it) leaves the follower to be
        seeded later, without holding up the other streams.
        """
        try:
            raw = client.xrevrange(follower.key, count=follower.channel.log_capacity)
        except redis.ResponseError as exc:
            if not follower.refused:
                follower.refused = True
                logger.warning(
                    "%s: Redis refused to read %r (%s); trying again every %s s",
                    self._name,
                    follower.key,
                    exc,
                    self._block_timeout,
                )
            return
        entries = read_entries(raw)
        entries.reverse()
        newest = entries[-1].id if entries else (0, 0)
        bad = 0
        with self._lock:
            if self._gen != gen or follower.detached:
                return
            cut = follower.cut_ms
            for entry in entries:
                if cut is None or entry.id[0] >= cut:
                    bad += _append(follower, entry)
            follower.last = newest
            # A stream already followed keeps its position: the XREAD from there brings
            # the others what this seed already holds, and this follower skips it.
            self._positions.setdefault(follower.key, format_id(newest))
            waiters = self._woken_locked()
        wake_all(waiters)
        if bad:
            _report_bad(follower.key, bad)

    def _deliver(self, streams: list[tuple[str, list[Entry]]], gen: int) -> None:
        """Append what one XREAD returned to the followers of each stream."""
        if not streams:
            return
        bad: dict[str, int] = {}
        with self._lock:
            if self._gen != gen:
                return
            for key, entries in streams:
                if key not in self._positions:
                    continue  # Unfollowed while the XREAD ran.
                followers = self._followers.get(key, ())
                for entry in entries:
                    for follower in followers:
                        last = follower.last
                        if last is not None and entry.id > last:
                            bad[key] = bad.get(key, 0) + _append(follower, entry)
                # Never backwards: the stream may have been followed again, from a newer
                # seed, while this XREAD ran.
                if (parse_id(str(self._positions[key])) or (0, 0)) < entries[-1].id:
                    self._positions[key] = entries[-1].text
            waiters = self._woken_locked()
        wake_all(waiters)
        for key, count in bad.items():
            if count:
                _report_bad(key, count)


def _append(follower: _Follower, entry: Entry) -> int:
    """Append one entry to the follower's channel; return 1 if it had to be skipped."""
    follower.last = entry.id
    body = entry.body
    if body is None or not body.endswith(b"\n\n"):
        return 1  # Not written by wsgisse: no event to send.
    try:
        follower.channel.append(body, entry.text, entry.audience)
    except InvalidEventError:
        return 1  # The id is in the log already (the stream was rewritten): keep the first.
    return 0


def _report_bad(key: str, count: int) -> None:
    logger.warning(
        "skipped %d entries of %r that hold no wsgisse event (or repeat an id)", count, key
    )


def _block_ms(client: redis.Redis, block_timeout: float) -> int:
    """How long one XREAD blocks: ``block_timeout``, but well inside the socket timeout.

    A client passed in by the application may have a socket timeout shorter than
    ``block_timeout``; an XREAD that outlasted it would fail every time.
    """
    seconds = block_timeout
    socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    if isinstance(socket_timeout, (int, float)) and socket_timeout > 0:
        seconds = min(seconds, max(socket_timeout - READ_MARGIN, socket_timeout / 2))
    return max(1, round(seconds * 1000))  # BLOCK 0 would block forever.
