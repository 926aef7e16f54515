"""The loop of the Redis backend's reader: seeding, one XREAD for every stream, delivery.

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

The same XREAD reads the control stream (revocations), whose entries are handled before
the channel entries of the reply. :class:`ReaderLoop` holds the state and runs; the
public side (follow, unfollow, stop, wait) is ``_redis_reader.Reader``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from .._errors import InvalidEventError
from .._event import is_event_body
from .._sync import Waiter, make_waiter, native_lock, native_thread_id, wake_all
from ._redis_replies import Entry, StreamId, format_id, parse_id, read_entries, split_streams
from ._redis_wire import xread

if TYPE_CHECKING:
    from redis.typing import KeyT, StreamIdT

    from .._channel import Channel

__all__ = ["READ_MARGIN", "Follower", "ReaderLoop"]

logger = logging.getLogger("wsgisse.redis")

#: The reader's socket timeout is its block_timeout plus this: the XREAD reply is due
#: after block_timeout, and a Redis that vanished without a reset is noticed this later.
READ_MARGIN = 2.0

# Entries fetched per stream per XREAD: bounds the memory of one reply.
_READ_BATCH = 1000
# Reconnection delays double from the first to the cap. The cap bounds how late a
# restarted Redis is noticed; the first keeps a blip short.
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0
# While Redis stays unreachable the reader says so at most this often.
_STILL_DOWN_EVERY = 60.0


class Follower:
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


class ReaderLoop:
    """The reader's state, and the loop that one run of the reader executes.

    State is guarded by one native lock (see ``wsgisse._sync``), held for dict and list
    work and ``Channel.append`` only, never across a Redis call or a logging call. The
    arguments are :class:`~wsgisse.backends._redis_reader.Reader`'s.
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
        self._by_channel: dict[Channel, Follower] = {}
        self._followers: dict[str, list[Follower]] = {}
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

    def _woken_locked(self) -> list[Waiter]:
        waiters, self._progress = self._progress, []
        return waiters

    # -- the reader -----------------------------------------------------------------------------

    def _run(self, gen: int) -> None:
        # The client, once made: made inside the loop, as making it may connect (a client
        # pinned to one connection of an application's pool) and so fail like any call.
        made: list[redis.Redis] = []
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
            self._follow(made, waiter, gen)
        finally:
            for client in made:
                client.close()
            with self._lock:
                self._alive.discard(gen)
                if self._gen == gen:  # Ended by something other than a stop (interpreter exit).
                    self._running = False
                    self._interrupt = self._thread_id = self._waiter = self._client_id = None
                waiters = self._woken_locked()
            wake_all(waiters)

    def _follow(self, made: list[redis.Redis], waiter: Waiter, gen: int) -> None:
        """Seed new followers and deliver what XREAD reads, until this run is stopped."""
        failures = 0
        down_since = last_said = 0.0
        while True:
            with self._lock:
                if self._gen != gen:
                    return
                pending = [f for fs in self._followers.values() for f in fs if f.last is None]
                know_id = self._client_id is not None
            try:
                if not made:
                    made.append(self._connect())
                client = made[0]
                block_ms = _block_ms(client, self._block_timeout)
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
                if made and self._on_round is not None:
                    # Its checks may find why (a failover moved the master elsewhere).
                    self._on_round(made[0])
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
        pending: list[Follower],
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
        reply = xread(client, streams, _READ_BATCH, block_ms)
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

    def _seed(self, client: redis.Redis, follower: Follower, gen: int) -> None:
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


def _append(follower: Follower, entry: Entry) -> int:
    """Append one entry to the follower's channel; return 1 if it had to be skipped."""
    follower.last = entry.id
    body = entry.body
    if body is None or not is_event_body(body):
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
