"""Delivery: one channel's log and subscribers, and who is woken or written to per event.

This module is the one owner of delivery state. A :class:`Fanout` holds a channel's
:class:`~wsgisse._log.EventLog`, its members (one :class:`Member` per subscription: a
cursor into the log and little else) and the set of members *parked*, waiting for the
next event. Every read or write of that state happens here, under the fanout's lock;
``Channel``, ``Subscription`` and ``MultiSubscription`` only call its methods.

An event reaches a parked member in one of two ways, chosen by :meth:`Fanout.append`:

* the ordinary path: the member's waiter is woken, and its own greenlet or thread takes
  the new frames (:meth:`Fanout.take`) and hands them to the WSGI server;
* the fast path, for a greenlet whose socket the server has lent us (a
  :class:`~wsgisse._direct.DirectWriter`): the publish itself writes the shared frame to
  every such socket from one loop on the members' hub thread (:meth:`Fanout.sweep`), and
  wakes only those it could not serve.

The fast path is safe because a member is parked only while its greenlet waits inside
:meth:`Fanout.take`'s wait: the server is then not writing to the socket (it waits for the
stream's next chunk), and no other greenlet of that thread runs during the loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from ._control import history_lost
from ._errors import (
    ChannelClosedError,
    InvalidEventError,
    SubscriptionClosedError,
    UnsafeConcurrencyError,
)
from ._event import with_id_line
from ._sync import call_on_hubs, make_waiter, native_lock, native_thread_id, wake_all

if TYPE_CHECKING:
    from ._direct import DirectWriter
    from ._log import EventLog
    from ._sync import Waiter

__all__ = ["Fanout", "Member", "SlowPolicy"]

SlowPolicy = Literal["disconnect", "skip"]

# What an id line adds to a frame, at most, for the log's byte bound (ours and Redis' ids
# are under 32 characters; a longer explicit id only makes the estimate short by a little).
_ID_LINE_ROOM = 40

# A member further behind than this is left to its own greenlet: its catch-up write is
# large, and the loop must stay short for everybody else.
_MAX_DIRECT_LAG = 64


def _publisher_waiter() -> Waiter | None:
    """A waiter for a publisher, or ``None`` where it must not wait (the gevent hub)."""
    try:
        return make_waiter()
    except UnsafeConcurrencyError:
        return None


class Member:
    """One subscription's place in a fanout. Its fields are the fanout's to change.

    Attributes:
        cursor: the sequence number of the next frame to hand over.
        live_from: frames before it are a replay the client asked for: they never count
            as backlog, or a client resuming a long gap would be dropped as slow at once.
        prelude: bytes to hand over before any frame (a history-lost notice).
        end_reason: why the subscription ended, or ``None`` while it is open.
        end_head: the head when it ended: what was published before is still handed
            over, nothing published after (a revoked client must not get one more).
        user: the subscriber's user, for events with an audience.
        waiter: what the subscriber blocks on.
        writer: the client's socket, lent for the fast path once the stream's first bytes
            are out; ``None`` on the ordinary path.
        fanout: the fanout it belongs to.
    """

    __slots__ = (
        "__weakref__",
        "cursor",
        "end_head",
        "end_reason",
        "fanout",
        "live_from",
        "prelude",
        "user",
        "waiter",
        "writer",
    )

    def __init__(
        self, fanout: Fanout, cursor: int, waiter: Waiter, prelude: bytes, user: str | None
    ) -> None:
        self.fanout = fanout
        self.cursor = cursor
        self.live_from = fanout.log.head
        self.prelude = prelude
        self.end_reason: str | None = None
        self.end_head: int | None = None
        self.user = user
        self.waiter = waiter
        self.writer: DirectWriter | None = None


class Fanout:
    """A channel's log, its members, and the delivery of each new event to them.

    Args:
        log: the channel's log (also every member's backlog).
        epoch: the prefix of the ids this fanout assigns, unique to the channel object.
        max_backlog: how many events a member may fall behind before ``on_slow``...
        slow_after: ...once the oldest event it has not taken waited this many seconds.
        on_slow: ``"disconnect"`` ends a slow member (its client resumes from history);
            ``"skip"`` jumps it to the head with a history-lost notice.
    """

    __slots__ = (
        "_epoch",
        "_needed_from",
        "by_user",
        "closed",
        "direct_writes",
        "dropped",
        "events_published",
        "history_lost",
        "lock",
        "log",
        "max_backlog",
        "members",
        "on_slow",
        "parked",
        "publishers",
        "replays",
        "slow_after",
        "slow_dropped",
    )

    def __init__(
        self,
        log: EventLog,
        *,
        epoch: str,
        max_backlog: int,
        slow_after: float,
        on_slow: SlowPolicy,
    ) -> None:
        self.lock = native_lock()
        self.log = log
        self.max_backlog = max_backlog
        self.slow_after = slow_after
        self.on_slow: SlowPolicy = on_slow
        self.closed = False
        # A dict, not a set: an empty dict costs a third of an empty set, per channel.
        self.members: dict[Member, None] = {}
        # The members of each user: an event for an audience reaches only theirs.
        self.by_user: dict[str, dict[Member, None]] = {}
        # A dict, not a list: parking again after every heartbeat timeout keeps one entry,
        # and a member that wakes or ends leaves at once.
        self.parked: dict[Member, None] = {}
        self.events_published = 0
        self.replays = 0
        self.history_lost = 0
        self.slow_dropped = 0
        self.direct_writes = 0
        self._epoch = epoch
        # Publishers waiting for a reading member to take the log's oldest frame, and a
        # lower bound of the members' cursors: frames below it are needed by nobody.
        self.publishers: list[Waiter] = []
        self._needed_from = 0
        # Members made slow by a publisher waiting for room, to wake once it unlocks.
        self.dropped: list[Member] = []

    # -- publishing ---------------------------------------------------------------------------

    def append(self, body: bytes, event_id: str | None, audience: frozenset[str] | None) -> str:
        """Add an encoded event without id to the log, deliver it, and return its id.

        When the log is full and its oldest event is still needed by a subscriber that is
        not slow (a burst it has not had the time to take), the publisher waits for it,
        at most until that subscriber would count as slow: the log never drops an event
        that a reading subscriber is about to take. A publisher that cannot wait (inside
        the gevent hub) does not.

        Raises:
            InvalidEventError: ``event_id`` is already in the log, or the event is larger
                than the log's byte bound.
        """
        waiter: Waiter | None = None
        while True:
            now = time.monotonic()
            with self.lock:
                log = self.log
                if event_id is not None and event_id in log:
                    raise InvalidEventError("id", event_id, "already used in the channel's history")
                deadline = self._wait_for_room_locked(now, len(body) + _ID_LINE_ROOM)
                if deadline is not None and waiter is None:
                    waiter = _publisher_waiter()
                if deadline is None or waiter is None:
                    assigned = f"{self._epoch}-{log.head + 1}" if event_id is None else event_id
                    try:
                        log.append(assigned, with_id_line(body, assigned), now, audience)
                    except ValueError as too_large:
                        raise InvalidEventError("data", body, str(too_large)) from None
                    self.events_published += 1
                    parked = self._take_parked_locked(log.head - 1, audience)
                    break
                self.publishers.append(waiter)
            self._wake_dropped()
            waiter.wait(max(deadline - now, 0.0))
        self._wake_dropped()
        if parked:
            self._deliver(list(parked))
        return assigned

    def _take_parked_locked(
        self, seq: int, audience: frozenset[str] | None
    ) -> list[Member] | dict[Member, None]:
        """The parked members frame ``seq`` is for, unparked, to deliver it to.

        A parked member has taken everything it may see: every frame appended since it
        parked was for an audience it is not in, or it would have been unparked. So it
        resumes at ``seq``, past those frames; one that stays parked skips this one too.
        An event for an audience costs its users' members, not the channel's.
        """
        if audience is None:
            parked, self.parked = self.parked, {}
            if self.log.restricted_from(0):  # Only then can a parked cursor be behind.
                for member in parked:
                    member.cursor = seq
            return parked
        chosen: list[Member] = []
        for user in audience:
            for member in self.by_user.get(user, ()):
                if self.parked.pop(member, 0) is None:
                    member.cursor = seq
                    chosen.append(member)
        return chosen

    def _needers_locked(self, oldest: int) -> list[Member]:
        """The members that still need the frame at ``oldest`` (the next to be dropped).

        A parked member has taken all it may see: it needs nothing the log holds. An
        awake one at a frame it may not see just moves past it.
        """
        log = self.log
        parked = self.parked
        needers = []
        for member in self.members:
            if member.cursor > oldest or member in parked:
                continue
            if member.cursor == oldest and not log.visible_at(oldest, member.user):
                member.cursor = oldest + 1
                continue
            needers.append(member)
        return needers

    def _wake_dropped(self) -> None:
        if self.dropped:
            with self.lock:
                dropped, self.dropped = self.dropped, []
            wake_all([member.waiter for member in dropped])

    def _wait_for_room_locked(self, now: float, size: int) -> float | None:
        """When the log is full and a reading member still needs its oldest frame: until
        when the publisher may wait for it (``None``: append now).

        Members that need the frame and are slow already are dropped now, so that one
        frozen client never holds the publishers back for more than ``slow_after``.
        """
        log = self.log
        oldest = log.oldest
        full = len(log) >= log.capacity or log.held_bytes + size > log.max_bytes
        if not full or oldest < self._needed_from or oldest == log.head:
            return None
        needers = self._needers_locked(oldest)
        if not needers:
            self._needed_from = min(
                (m.cursor for m in self.members if m not in self.parked), default=log.head
            )
            return None
        deadline = None
        for member in needers:
            first = max(member.cursor, member.live_from)
            appended = log.time_at(first)
            if appended is None or now - appended >= self.slow_after:
                self._slow_locked(member)
                self.dropped.append(member)
            elif deadline is None or appended + self.slow_after < deadline:
                deadline = appended + self.slow_after
        return deadline

    def _deliver(self, parked: list[Member]) -> None:
        """Wake the parked members, or sweep them on their hub's thread (the fast path)."""
        me = native_thread_id()
        woken: list[Waiter] = []
        here: list[Member] = []
        remote: dict[Any, list[Member]] = {}
        for member in parked:
            waiter = member.waiter
            if member.writer is None:
                woken.append(waiter)
            elif waiter.thread_id == me:
                here.append(member)
            else:
                remote.setdefault(waiter.hub, []).append(member)  # type: ignore[attr-defined]
        if woken:
            wake_all(woken)
        if here:
            self.sweep(here)
        if remote:
            call_on_hubs(remote, self.sweep)  # The loop must run on the members' thread.

    def sweep(self, parked: Sequence[Member]) -> None:
        """Write the new frames to parked members' sockets from this one loop.

        Runs on the thread of the members' hub. Those it serves stay parked (a member whose
        new frames are all for audiences it is not in is served with nothing); the others
        (socket full, too far behind, a prelude to send, ended) are woken to take their
        frames themselves.
        """
        now = time.monotonic()
        with self.lock:
            served, writers, frames, to_wake = self._plan_sweep_locked(parked)
        # Outside the lock: no lock is held while writing to a socket.
        failed = [
            member
            for member, writer, framed in zip(served, writers, frames, strict=True)
            if not writer.try_send(framed, now)
        ]
        if failed:
            with self.lock:
                for member in failed:
                    self.parked.pop(member, None)
            to_wake += failed
        if to_wake:
            wake_all([member.waiter for member in to_wake])
        if served and self.publishers:
            self._wake_publishers()

    def _plan_sweep_locked(
        self, parked: Sequence[Member]
    ) -> tuple[list[Member], list[DirectWriter], list[bytes], list[Member]]:
        """Who the loop writes to, through which writer and what, in parallel lists
        (advancing their cursors), and who is woken.

        Parallel lists rather than a list of triples: a tuple per member and event would be
        thousands of objects for the cyclic GC to count per publish, which made it run
        full collections (tens of ms with thousands of streams) every few seconds.
        """
        log = self.log
        served: list[Member] = []
        writers: list[DirectWriter] = []
        frames: list[bytes] = []
        to_wake: list[Member] = []
        framed_at: dict[int, bytes] = {}
        head = log.head
        oldest = log.oldest
        for member in parked:
            writer = member.writer
            cursor = member.cursor
            if (
                writer is None
                or writer.remainder
                or member.end_reason is not None
                or member.prelude
                or cursor < oldest
                or head - cursor > _MAX_DIRECT_LAG
            ):
                to_wake.append(member)
                continue
            if cursor < head:
                if log.restricted_from(cursor):  # Frames for audiences: filtered for it.
                    visible = b"".join(log.visible_frames(cursor, head, member.user))
                    framed = writer.frame(visible) if visible else b""
                else:
                    framed = framed_at.get(cursor, b"")
                    if not framed:  # One framed bytes object for all at the same place.
                        framed = framed_at[cursor] = writer.frame(b"".join(log.frames_from(cursor)))
                member.cursor = head
                if framed:
                    served.append(member)
                    writers.append(writer)
                    frames.append(framed)
            self.parked[member] = None  # Still waiting.
        self.direct_writes += len(served)
        return served, writers, frames, to_wake

    # -- members --------------------------------------------------------------------------------

    def join(
        self,
        last_event_id: str | None,
        waiter: Waiter,
        *,
        from_start: bool = False,
        user: str | None = None,
    ) -> Member:
        """A new member: at the head, after ``last_event_id``, or at the log's very start.

        ``from_start``: before the channel's first event ever (a multiplexed client that
        subscribed while this channel was still empty). A resume the log cannot serve
        exactly starts at the head with a history-lost notice.

        Raises:
            ChannelClosedError: the fanout was closed.
        """
        now = time.monotonic()
        with self.lock:
            if self.closed:
                raise ChannelClosedError("the channel is closed")
            log = self.log
            prelude = b""
            cursor = log.head
            if from_start:
                if log.oldest == 0 and len(log) <= log.replay_limit:
                    cursor = 0
                else:
                    prelude = history_lost("", log.oldest_id())
            elif last_event_id is not None:
                cursor, lost = log.resume_after(last_event_id, now)
                if lost:
                    prelude = history_lost(last_event_id, log.oldest_id())
                    self.history_lost += 1
                else:
                    self.replays += 1
            member = Member(self, cursor, waiter, prelude, user)
            self.members[member] = None
            if user is not None:
                self.by_user.setdefault(user, {})[member] = None
            self._needed_from = min(self._needed_from, cursor)
        return member

    def lend_socket(self, member: Member, writer: DirectWriter) -> None:
        """Let the publish loop write to ``member``'s socket (its stream's preamble is out).

        Only a greenlet's member is written to by the loop: a thread has no hub to run the
        loop on, so it stays on the ordinary path.
        """
        if member.waiter.thread_id is not None:
            member.writer = writer

    def hand_over(self, member: Member, writer: DirectWriter, waiter: Waiter) -> None:
        """``member``'s stream has taken its connection over from the server: from now on
        the publish loop writes to it, and ``waiter`` (a ``_released.Pump``) is woken for
        the rest."""
        with self.lock:
            member.waiter = waiter
            member.writer = writer

    def position(self, member: Member) -> str:
        """The id that names ``member``'s place: a ``Last-Event-ID`` resuming it exactly.

        The id of the last event before its cursor, or the log's origin id when it is at
        the very start; ``""`` when neither is held.
        """
        with self.lock:
            return self.log.position_id(member.cursor) or ""

    def take(self, member: Member, may_wait: bool) -> bytes | None:
        """Every frame not yet handed to ``member``, joined; ``None`` if there is none.

        What the publish loop could not send goes first. With nothing to hand over and
        ``may_wait``, the member is parked until the next event (see ``_sync.wait_for``).

        Raises:
            SubscriptionClosedError: the member has ended and nothing is left.
        """
        self._flush(member)
        with self.lock:
            # Awake: from now until parked again the server may write to the socket, so the
            # publish loop must not.
            self._unpark_locked(member)
            prelude, frames, _ = self._take_locked(member)
            chunk = frames[0] if len(frames) == 1 and not prelude else prelude + b"".join(frames)
            if not chunk:  # Empty too when every frame was for an audience it is not in.
                if member.end_reason is not None:
                    raise SubscriptionClosedError(member.end_reason)
                if may_wait:
                    self.parked[member] = None
        if frames and self.publishers:  # It moved on: a publisher may have room now.
            self._wake_publishers()
        return chunk or None

    def take_events(self, member: Member, may_wait: bool) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The prelude and the ``(id, frame)`` pairs not yet handed to ``member``.

        For a multiplexed stream, which relabels each frame. Frames the member's user may
        not see are left out. With nothing to hand over, an open member is parked when
        ``may_wait``; an ended one is not (its ``end_reason`` says so).
        """
        with self.lock:
            self._unpark_locked(member)
            prelude, frames, first = self._take_locked(member)
            id_at = self.log.id_at
            events = [(id_at(first + n) or "", frame) for n, frame in enumerate(frames) if frame]
            if not (prelude or events) and member.end_reason is None and may_wait:
                self.parked[member] = None
        if frames and self.publishers:
            self._wake_publishers()
        return prelude, events

    def _wake_publishers(self) -> None:
        with self.lock:
            publishers, self.publishers = self.publishers, []
        wake_all(publishers)

    def _unpark_locked(self, member: Member) -> None:
        """Unpark ``member`` by itself (a timeout): it skips what came while it was parked.

        Still parked means nothing it may see arrived since it parked (see
        ``_take_parked_locked``).
        """
        if self.parked.pop(member, 0) is None:
            member.cursor = max(member.cursor, self.log.head)

    def _flush(self, member: Member) -> None:
        writer = member.writer
        if writer is not None and writer.remainder:
            try:
                writer.flush()
            except OSError:
                self.end(member, "gone")

    def _take_locked(self, member: Member) -> tuple[bytes, Sequence[bytes], int]:
        """(prelude, frames not yet taken, the sequence number of the first frame).

        A frame the member's user may not see is ``b""`` (the sequence stays aligned).
        """
        log = self.log
        cursor = member.cursor
        head = log.head if member.end_head is None else min(log.head, member.end_head)
        prelude = member.prelude
        member.prelude = b""
        if cursor >= head:
            return prelude, (), cursor
        if cursor < log.oldest or self._lagging_locked(member, head):
            self._slow_locked(member)
            prelude, member.prelude = member.prelude, b""
            return prelude, (), member.cursor
        member.cursor = head
        return prelude, log.visible_frames(cursor, head, member.user), cursor

    def _slow_locked(self, member: Member) -> None:
        """Apply the slow-client policy to ``member``: end it, or skip it to the head."""
        self.slow_dropped += 1
        if self.on_slow == "disconnect":
            self._end_locked(member, "slow")
            return
        log = self.log
        member.prelude = history_lost(log.position_id(member.cursor) or "", log.oldest_id())
        member.cursor = log.head

    def _lagging_locked(self, member: Member, head: int) -> bool:
        """Whether ``member`` is more than ``max_backlog`` behind, and has been a while.

        Frames before ``live_from`` are a replay it asked for and never count; a burst it
        is taking does not either: only once its oldest untaken frame has waited
        ``slow_after`` seconds is it slow.
        """
        first = max(member.cursor, member.live_from)
        if head - first <= self.max_backlog:
            return False
        appended = self.log.time_at(first)
        return appended is None or time.monotonic() - appended >= self.slow_after

    # -- ending -------------------------------------------------------------------------------

    def _end_locked(self, member: Member, reason: str) -> bool:
        if member.end_reason is not None:
            return False
        member.end_reason = reason
        member.end_head = self.log.head
        self.members.pop(member, None)
        self.parked.pop(member, None)
        user = member.user
        if user is not None:
            of_user = self.by_user.get(user)
            if of_user is not None:
                of_user.pop(member, None)
                if not of_user:
                    del self.by_user[user]
        return True

    def end(self, member: Member, reason: str) -> None:
        """End ``member`` (idempotent, any thread); a blocked take returns."""
        with self.lock:
            ended = self._end_locked(member, reason)
        if ended:
            wake_all([member.waiter])

    def end_all(self, reason: str) -> int:
        """End every member with ``reason`` and return how many there were."""
        with self.lock:
            ended = self.end_all_locked(reason)
        wake_all([member.waiter for member in ended])
        return len(ended)

    def close_locked(self) -> list[Member] | None:
        """Refuse new members and end all (the lock is held); ``None``: closed already."""
        if self.closed:
            return None
        self.closed = True
        return self.end_all_locked("channel-closed")

    def end_all_locked(self, reason: str) -> list[Member]:
        """End every member with ``reason`` (the lock is held); return them, to wake."""
        ended = list(self.members)
        for member in ended:
            self._end_locked(member, reason)
        return ended

    def counters(self) -> dict[str, int]:
        """The totals (see ``Channel.counters``)."""
        with self.lock:
            return {
                "events_published": self.events_published,
                "replays": self.replays,
                "history_lost": self.history_lost,
                "slow_dropped": self.slow_dropped,
                "direct_writes": self.direct_writes,
            }
