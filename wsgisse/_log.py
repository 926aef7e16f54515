"""The event log of one channel: encoded frames, their ids, and the replay arithmetic.

Pure: no locks, no clock, no I/O. The channel owns the lock and passes the time in.

Every appended frame gets a sequence number, an int that only grows. A subscriber is no
more than a cursor (the sequence number of the next frame it must write), so fan-out
shares one ``bytes`` object per event among all subscribers, and memory depends on the
log's capacity alone, never on the number or the speed of the subscribers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["EventLog", "Resume"]


class Resume(NamedTuple):
    """Where a subscriber that presented a ``Last-Event-ID`` starts.

    ``cursor`` is the sequence number of the first frame to send it. ``lost`` is true when
    the id is not (or no longer) in the replay window: the subscriber then starts at the
    head and must be told that history was lost.
    """

    cursor: int
    lost: bool


class EventLog:
    """A bounded ring of encoded frames, indexed by sequence number and by event id.

    Args:
        capacity: how many frames are held. It bounds memory, and it is also every
            subscriber's backlog: a cursor older than the oldest held frame has lost frames.
        replay_limit: how many of the newest frames a reconnecting client may be replayed.
        replay_seconds: how old a frame may be and still be replayed (``None``: no limit).

    Raises:
        ValueError: capacity below 1, replay_limit negative or above capacity, or
            replay_seconds not positive.
    """

    __slots__ = (
        "_audience_held",
        "_audiences",
        "_capacity",
        "_frames",
        "_head",
        "_ids",
        "_replay_limit",
        "_replay_seconds",
        "_seq_by_id",
        "_times",
    )

    def __init__(
        self, capacity: int, *, replay_limit: int, replay_seconds: float | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        if not 0 <= replay_limit <= capacity:
            raise ValueError(f"replay_limit must be in 0..{capacity}, not {replay_limit}")
        if replay_seconds is not None and not replay_seconds > 0:
            raise ValueError(f"replay_seconds must be positive, not {replay_seconds}")
        self._capacity = capacity
        self._replay_limit = replay_limit
        self._replay_seconds = replay_seconds
        # Parallel rings indexed by seq % capacity: three flat lists cost less per append
        # than one object per entry, and the hot path (frames_from) touches only _frames.
        self._frames: list[bytes] = [b""] * capacity
        self._ids: list[str] = [""] * capacity
        self._times: list[float] = [0.0] * capacity
        self._seq_by_id: dict[str, int] = {}
        # Who may see each frame (None: everybody), and how many held frames are
        # restricted: while none is, delivery never looks at audiences at all.
        self._audiences: list[frozenset[str] | None] = [None] * capacity
        self._audience_held = 0
        self._head = 0

    @property
    def head(self) -> int:
        """The sequence number the next appended frame will get."""
        return self._head

    @property
    def oldest(self) -> int:
        """The sequence number of the oldest held frame (``head`` when none is held)."""
        return max(0, self._head - self._capacity)

    @property
    def audience_held(self) -> int:
        """How many held frames are restricted to an audience."""
        return self._audience_held

    @property
    def replay_limit(self) -> int:
        """How many of the newest frames may be replayed."""
        return self._replay_limit

    @property
    def capacity(self) -> int:
        """How many frames the log holds at most."""
        return self._capacity

    def __len__(self) -> int:
        return self._head - self.oldest

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seq_by_id

    def oldest_id(self) -> str | None:
        """The id of the oldest frame still held, or ``None`` when the log is empty."""
        return None if self._head == self.oldest else self._ids[self.oldest % self._capacity]

    def last_id(self) -> str | None:
        """The id of the newest frame, or ``None`` when the log is empty."""
        return None if self._head == self.oldest else self._ids[(self._head - 1) % self._capacity]

    def append(
        self, event_id: str, frame: bytes, now: float, audience: frozenset[str] | None = None
    ) -> int:
        """Append one encoded frame and return its sequence number.

        ``audience``: the users who may receive it (``None``: everybody). The oldest
        frame is dropped once the log is full.

        Raises:
            ValueError: ``event_id`` is already held: an id must name one event, or a
                ``Last-Event-ID`` could resume at the wrong place.
        """
        if event_id in self._seq_by_id:
            raise ValueError(f"event id {event_id!r} is already in the channel's history")
        seq = self._head
        slot = seq % self._capacity
        if seq >= self._capacity:
            del self._seq_by_id[self._ids[slot]]
            if self._audiences[slot] is not None:
                self._audience_held -= 1
        if audience is not None:
            self._audience_held += 1
        self._audiences[slot] = audience
        self._frames[slot] = frame
        self._ids[slot] = event_id
        self._times[slot] = now
        self._seq_by_id[event_id] = seq
        self._head = seq + 1
        return seq

    def frames_from(self, cursor: int, stop: int | None = None) -> Sequence[bytes]:
        """The frames from sequence number ``cursor`` to ``stop`` (the head), oldest first.

        Raises:
            IndexError: ``cursor`` is older than the oldest held frame (they were dropped).
        """
        if cursor < self.oldest:
            raise IndexError(f"frames from {cursor} on were dropped; the oldest is {self.oldest}")
        head = self._head if stop is None else min(stop, self._head)
        if cursor >= head:
            return ()
        capacity = self._capacity
        start, stop = cursor % capacity, head % capacity
        if start < stop:
            return self._frames[start:stop]
        return self._frames[start:] + self._frames[:stop]

    def visible_frames(self, cursor: int, stop: int, user: str | None) -> Sequence[bytes]:
        """:meth:`frames_from`, with ``b""`` in place of each frame ``user`` may not see.

        The result stays aligned with the sequence numbers (frame ``n`` of it is
        ``cursor + n``).
        """
        frames = self.frames_from(cursor, stop)
        if not self._audience_held:
            return frames
        capacity = self._capacity
        audiences = self._audiences
        return [
            frame
            if (audience := audiences[(cursor + n) % capacity]) is None or user in audience
            else b""
            for n, frame in enumerate(frames)
        ]

    def id_at(self, seq: int) -> str | None:
        """The id of the frame with sequence number ``seq``, or ``None`` if not held."""
        if not self.oldest <= seq < self._head:
            return None
        return self._ids[seq % self._capacity]

    def resume_after(self, last_event_id: str, now: float) -> Resume:
        """Where to start a subscriber whose last received event was ``last_event_id``.

        The frames after it are replayed only when all of them are within the replay
        window (the newest ``replay_limit`` frames, none older than ``replay_seconds``);
        a partial replay would hide a gap, so otherwise the subscriber starts at the head
        with ``lost`` set.
        """
        seq = self._seq_by_id.get(last_event_id)
        head = self._head
        if seq is None:
            return Resume(head, lost=True)
        cursor = seq + 1
        missed = head - cursor
        if missed == 0:
            return Resume(head, lost=False)
        if missed > self._replay_limit:
            return Resume(head, lost=True)
        if self._replay_seconds is not None:
            first_missed_time = self._times[cursor % self._capacity]
            if now - first_missed_time > self._replay_seconds:
                return Resume(head, lost=True)
        return Resume(cursor, lost=False)
