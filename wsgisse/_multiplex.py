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

import queue
import time
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode

from ._channel import Channel, Subscription
from ._errors import SubscriptionClosedError
from ._sync import make_waiter

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

    The subscriptions share one waiter, so an event in any channel wakes the reader.
    Each frame is re-labelled with the composite id (its body, the bytes before the id
    line, is still the channel's shared encoding).
    """

    def __init__(
        self, channels: Sequence[Channel], last_event_id: str | None, user: str | None = None
    ) -> None:
        waiter = self._waiter = make_waiter()
        known = decode_position(last_event_id) if last_event_id else None
        self._positions: dict[str, str] = {}
        self._subscriptions: list[Subscription] = []
        try:
            for channel in channels:
                position = None if known is None else known.get(channel.name)
                if last_event_id is not None and known is None:
                    # Not a composite id: no channel can resume it, and each says so.
                    subscription = channel._subscribe(last_event_id, waiter, user=user)  # noqa: SLF001
                elif position == "":
                    subscription = channel._subscribe(None, waiter, from_start=True, user=user)  # noqa: SLF001
                else:
                    subscription = channel._subscribe(position, waiter, user=user)  # noqa: SLF001
                self._subscriptions.append(subscription)
                with channel._lock:  # noqa: SLF001
                    # The id just before the cursor: nothing taken yet can be claimed.
                    last = channel._log.id_at(subscription._cursor - 1)  # noqa: SLF001
                self._positions[channel.name] = last or ""
        except BaseException:
            self.close()
            raise

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Every frame not yet taken from any of the channels, relabelled and joined.

        Raises:
            queue.Empty: nothing within ``timeout``.
            SubscriptionClosedError: every subscription has ended.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            chunks: list[bytes] = []
            open_count = 0
            for subscription in self._subscriptions:
                channel = subscription.channel
                with channel._lock:  # noqa: SLF001
                    prelude, frames, first = subscription._take_frames_locked()  # noqa: SLF001
                    ids = [channel._log.id_at(first + n) for n in range(len(frames))]  # noqa: SLF001
                    if not (prelude or frames) and subscription.end_reason is None:
                        subscription._park_locked()  # noqa: SLF001
                if subscription.end_reason is None:
                    open_count += 1
                if prelude:
                    chunks.append(prelude)
                for frame, event_id in zip(frames, ids, strict=True):
                    if not frame:  # Published for an audience this subscriber is not in.
                        continue
                    self._positions[channel.name] = event_id or ""
                    body = frame[: frame.rindex(b"\nid: ") + 1]
                    composite = encode_position(self._positions).encode()
                    chunks.append(b"%sid: %s\n\n" % (body, composite))
            if chunks:
                return b"".join(chunks)
            if open_count < len(self._subscriptions):
                reasons = [s.end_reason for s in self._subscriptions if s.end_reason is not None]
                self.close(reasons[0] or "closed")
                raise SubscriptionClosedError(reasons[0] or "closed")
            remaining = None if deadline is None else deadline - time.monotonic()
            if not block or (remaining is not None and remaining <= 0):
                raise queue.Empty
            self._waiter.wait(remaining)

    def end(self, reason: str) -> None:
        """End every subscription with ``reason``; a blocked :meth:`get` returns."""
        self.close(reason)

    def close(self, reason: str = "closed") -> None:
        """Close every subscription (idempotent, any thread)."""
        for subscription in self._subscriptions:
            subscription.close(reason)
