"""Several channels over one stream, with one Last-Event-ID that resumes them all.

A browser may hold only six HTTP/1.1 connections per origin, so a page that follows
several channels should use one ``EventSource`` for all of them
(``/events?channel=news&channel=alerts``). A browser remembers one id per stream, so the
id of every event on a multiplexed stream is the *position* of the stream in every
channel, form-encoded (``news=<id>&alerts=<id>``). Presented as ``Last-Event-ID`` on
reconnect, it resumes each channel exactly where it stopped.

A channel that had no event yet when the client subscribed has the position ``""``:
everything it holds was published after the client arrived, so all of it is replayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from ._errors import SubscriptionClosedError
from ._event import relabel
from ._sync import make_waiter, wait_for

if TYPE_CHECKING:
    from ._channel import Channel
    from ._fanout import Member

__all__ = ["MultiSubscription", "decode_position", "encode_position"]


def encode_position(positions: dict[str, str]) -> str:
    """The composite id of a multiplexed stream: its position in every channel."""
    return urlencode(positions)


def decode_position(value: str) -> dict[str, str] | None:
    """The positions in a composite id, or ``None`` when ``value`` is not one."""
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    return dict(pairs)


class MultiSubscription:
    """One subscriber's place in several channels, read as one source of frames.

    The places share one waiter, so an event in any channel wakes the reader. Each frame
    is relabelled with the composite id (its body, the bytes before the id line, is still
    the channel's shared encoding).
    """

    def __init__(
        self, channels: Sequence[Channel], last_event_id: str | None, user: str | None = None
    ) -> None:
        self._waiter = make_waiter()
        known = decode_position(last_event_id) if last_event_id else None
        self._members: list[tuple[str, Member]] = []
        self._positions: dict[str, str] = {}
        try:
            for channel in channels:
                start = last_event_id  # Not a composite id: no channel can resume it.
                from_start = False
                if known is not None or last_event_id is None:
                    start = None if known is None else known.get(channel.name)
                    from_start = start == ""
                    if from_start:
                        start = None
                member = channel._join(  # noqa: SLF001 - the channel's sibling, by design
                    start, self._waiter, from_start=from_start, user=user
                )
                self._members.append((channel.name, member))
                # The id just before the cursor: nothing taken yet can be claimed.
                self._positions[channel.name] = member.fanout.position(member)
        except BaseException:
            self.close()
            raise

    @property
    def last_event_id(self) -> str:
        """The composite id that resumes every channel where the stream is now."""
        return encode_position(self._positions)

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Every frame not yet taken from any of the channels, relabelled and joined.

        Raises:
            queue.Empty: nothing within ``timeout``.
            SubscriptionClosedError: a subscription has ended (then all of them are).
        """
        return wait_for(self._poll, self._waiter, block, timeout)

    def _poll(self, may_wait: bool) -> bytes | None:
        chunks: list[bytes] = []
        ended: str | None = None
        positions = self._positions
        for name, member in self._members:
            prelude, events = member.fanout.take_events(member, may_wait)
            if prelude:
                chunks.append(prelude)
            for event_id, frame in events:
                positions[name] = event_id
                chunks.append(relabel(frame, encode_position(positions)))
            if member.end_reason is not None and ended is None:
                ended = member.end_reason
        if chunks:
            return b"".join(chunks)
        if ended is not None:
            self.close(ended)
            raise SubscriptionClosedError(ended)
        return None

    def end(self, reason: str) -> None:
        """End every subscription with ``reason``; a blocked :meth:`get` returns."""
        self.close(reason)

    def close(self, reason: str = "closed") -> None:
        """Close every subscription (idempotent, any thread)."""
        for _, member in self._members:
            member.fanout.end(member, reason)
