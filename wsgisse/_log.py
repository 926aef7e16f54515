"""The event log of one channel: encoded frames, their ids, and the replay arithmetic.

Pure: no locks, no clock, no I/O. The channel owns the lock and passes the time in.

Every appended frame gets a sequence number, an int that only grows. A subscriber is no
more than a cursor (the sequence number of the next frame it must write), so fan-out
shares one ``bytes`` object per event among all subscribers, and memory follows the
frames held, never the number or the speed of the subscribers. The log is bounded twice:
in frames (``capacity``) and in bytes (``max_bytes``); it allocates nothing ahead, so an
idle channel costs a few empty lists, and a channel of a few events only those events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["DEFAULT_MAX_BYTES", "EventLog", "Resume"]

#: The default byte bound of a channel's log: 16 MiB of encoded frames. Far above what a
#: history of small events needs (1,000 events of 1 KiB: 1 MiB), low enough that a web
#: worker holding some dozens of busy channels stays within its memory.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024

# The front of the lists is cut once this many frames (and at least half of them) are
# no longer held: appends stay O(1) amortised, and the slack at most doubles the lists.
_COMPACT_AFTER = 64


class Resume(NamedTuple):
    """Where a subscriber that presented a ``Last-Event-ID`` starts.

    ``cursor`` is the sequence number of the first frame to send it. ``lost`` is true when
    the id is not (or no longer) in the replay window: the subscriber then starts at the
    head and must be told that history was lost.
    """

    cursor: int
    lost: bool


class EventLog:
    """A bounded log of encoded frames, indexed by sequence number and by event id.

    Args:
        capacity: how many frames are held at most. It is also every subscriber's
            backlog: a cursor older than the oldest held frame has lost frames.
        replay_limit: how many of the newest frames a reconnecting client may be replayed.
        replay_seconds: how old a frame may be and still be replayed (``None``: no limit).
        max_bytes: how many bytes of frames are held at most; the oldest frames go first.
        origin_id: an id that names the position before the log's very first frame
            (``None``: no such id). A subscriber of an empty log is told it, so that even
            a client that received no event yet can resume exactly.

    Raises:
        ValueError: capacity or max_bytes below 1, replay_limit negative or above
            capacity, or replay_seconds not positive.
    """

    __slots__ = (
        "_audience_held",
        "_audiences",
        "_base",
        "_bytes",
        "_capacity",
        "_frames",
        "_head",
        "_ids",
        "_max_bytes",
        "_oldest",
        "_origin_id",
        "_replay_limit",
        "_replay_seconds",
        "_seq_by_id",
        "_times",
    )

    def __init__(
        self,
        capacity: int,
        *,
        replay_limit: int,
        replay_seconds: float | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        origin_id: str | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        if not 0 <= replay_limit <= capacity:
            raise ValueError(f"replay_limit must be in 0..{capacity}, not {replay_limit}")
        if replay_seconds is not None and not replay_seconds > 0:
            raise ValueError(f"replay_seconds must be positive, not {replay_seconds}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        self._capacity = capacity
        self._replay_limit = replay_limit
        self._replay_seconds = replay_seconds
        self._max_bytes = max_bytes
        self._origin_id = origin_id
        # Parallel lists, entry i holding sequence number _base + i; entries before
        # _oldest - _base are no longer held (their frames already released).
        self._frames: list[bytes] = []
        self._ids: list[str] = []
        self._times: list[float] = []
        # Who may see each frame (None: everybody), made at the first restricted frame;
        # and how many held frames are restricted: while none is, delivery never looks.
        self._audiences: list[frozenset[str] | None] | None = None
        self._audience_held = 0
        self._seq_by_id: dict[str, int] = {}
        self._base = 0
        self._oldest = 0
        self._head = 0
        self._bytes = 0

    @property
    def head(self) -> int:
        """The sequence number the next appended frame will get."""
        return self._head

    @property
    def oldest(self) -> int:
        """The sequence number of the oldest held frame (``head`` when none is held)."""
        return self._oldest

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

    @property
    def max_bytes(self) -> int:
        """How many bytes of frames the log holds at most."""
        return self._max_bytes

    @property
    def held_bytes(self) -> int:
        """How many bytes of frames the log holds now."""
        return self._bytes

    @property
    def origin_id(self) -> str | None:
        """The id naming the position before the first frame ever (see the class)."""
        return self._origin_id

    def __len__(self) -> int:
        return self._head - self._oldest

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._seq_by_id

    def oldest_id(self) -> str | None:
        """The id of the oldest frame still held, or ``None`` when the log is empty."""
        return None if self._head == self._oldest else self._ids[self._oldest - self._base]

    def last_id(self) -> str | None:
        """The id of the newest frame, or ``None`` when the log is empty."""
        return None if self._head == self._oldest else self._ids[-1]

    def append(
        self, event_id: str, frame: bytes, now: float, audience: frozenset[str] | None = None
    ) -> int:
        """Append one encoded frame and return its sequence number.

        ``audience``: the users who may receive it (``None``: everybody). The oldest
        frames are dropped while the log would hold more than ``capacity`` frames or
        ``max_bytes`` bytes.

        Raises:
            ValueError: ``event_id`` is already held (an id must name one event, or a
                ``Last-Event-ID`` could resume at the wrong place), or the frame alone is
                larger than ``max_bytes``.
        """
        if event_id in self._seq_by_id:
            raise ValueError(f"event id {event_id!r} is already in the channel's history")
        size = len(frame)
        if size > self._max_bytes:
            raise ValueError(
                f"the event is {size} bytes encoded, more than the {self._max_bytes} bytes "
                "the channel's history holds"
            )
        while self._head - self._oldest >= self._capacity or self._bytes + size > self._max_bytes:
            self._drop_oldest()
        if audience is not None and self._audiences is None:
            self._audiences = [None] * len(self._frames)
        if self._audiences is not None:
            self._audiences.append(audience)
            if audience is not None:
                self._audience_held += 1
        seq = self._head
        self._frames.append(frame)
        self._ids.append(event_id)
        self._times.append(now)
        self._seq_by_id[event_id] = seq
        self._bytes += size
        self._head = seq + 1
        return seq

    def _drop_oldest(self) -> None:
        index = self._oldest - self._base
        del self._seq_by_id[self._ids[index]]
        self._bytes -= len(self._frames[index])
        self._frames[index] = b""  # Released now, not at the next compaction.
        audiences = self._audiences
        if audiences is not None and audiences[index] is not None:
            audiences[index] = None
            self._audience_held -= 1
        self._oldest += 1
        dead = self._oldest - self._base
        if dead >= _COMPACT_AFTER and 2 * dead >= len(self._frames):
            del self._frames[:dead], self._ids[:dead], self._times[:dead]
            if audiences is not None:
                del audiences[:dead]
                if not self._audience_held:
                    self._audiences = None
            self._base = self._oldest

    def frames_from(self, cursor: int, stop: int | None = None) -> Sequence[bytes]:
        """The frames from sequence number ``cursor`` to ``stop`` (the head), oldest first.

        Raises:
            IndexError: ``cursor`` is older than the oldest held frame (they were dropped).
        """
        if cursor < self._oldest:
            raise IndexError(f"frames from {cursor} on were dropped; the oldest is {self._oldest}")
        head = self._head if stop is None else min(stop, self._head)
        if cursor >= head:
            return ()
        base = self._base
        return self._frames[cursor - base : head - base]

    def visible_frames(self, cursor: int, stop: int, user: str | None) -> Sequence[bytes]:
        """:meth:`frames_from`, with ``b""`` in place of each frame ``user`` may not see.

        The result stays aligned with the sequence numbers (frame ``n`` of it is
        ``cursor + n``).
        """
        frames = self.frames_from(cursor, stop)
        audiences = self._audiences
        if not self._audience_held or audiences is None:
            return frames
        start = cursor - self._base
        return [
            frame if (audience := audiences[start + n]) is None or user in audience else b""
            for n, frame in enumerate(frames)
        ]

    def time_at(self, seq: int) -> float | None:
        """When the frame with sequence number ``seq`` was appended, or ``None``."""
        if not self._oldest <= seq < self._head:
            return None
        return self._times[seq - self._base]

    def id_at(self, seq: int) -> str | None:
        """The id of the frame with sequence number ``seq``, or ``None`` if not held."""
        if not self._oldest <= seq < self._head:
            return None
        return self._ids[seq - self._base]

    def position_id(self, cursor: int) -> str | None:
        """The id that names ``cursor``'s place: the id of the frame before it.

        For a cursor at the very start of the log, the :attr:`origin_id`; ``None`` when
        that frame is no longer held.
        """
        if cursor == 0:
            return self._origin_id
        return self.id_at(cursor - 1)

    def resume_after(self, last_event_id: str, now: float) -> Resume:
        """Where to start a subscriber whose last received event was ``last_event_id``.

        The frames after it are replayed only when all of them are within the replay
        window (the newest ``replay_limit`` frames, none older than ``replay_seconds``);
        a partial replay would hide a gap, so otherwise the subscriber starts at the head
        with ``lost`` set. The :attr:`origin_id` resumes before the first frame ever.
        """
        head = self._head
        if last_event_id == self._origin_id:
            seq = -1
        else:
            found = self._seq_by_id.get(last_event_id)
            if found is None:
                return Resume(head, lost=True)
            seq = found
        cursor = seq + 1
        missed = head - cursor
        if missed == 0:
            return Resume(head, lost=False)
        if cursor < self._oldest or missed > self._replay_limit:
            return Resume(head, lost=True)
        if self._replay_seconds is not None:
            first_missed_time = self._times[cursor - self._base]
            if now - first_missed_time > self._replay_seconds:
                return Resume(head, lost=True)
        return Resume(cursor, lost=False)
