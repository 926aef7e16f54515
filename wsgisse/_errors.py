"""The one error tree of wsgisse.

Every error raised on purpose by wsgisse derives from :class:`WsgisseError`, and each
specific error also derives from the builtin exception that fits it, so callers can catch
either ``wsgisse.InvalidEventError`` or a plain ``ValueError``.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ChannelClosedError",
    "HistoryLostError",
    "InvalidEventError",
    "SubscriptionClosedError",
    "UnsafeConcurrencyError",
    "WsgisseError",
]


class WsgisseError(Exception):
    """Base class of every error wsgisse raises on purpose.

    It is abstract: raise one of its subclasses. Raising it directly gives ``TypeError``,
    so that every error a caller sees names what actually went wrong.
    """

    def __init__(self, *args: object) -> None:
        if type(self) is WsgisseError:
            raise TypeError("WsgisseError is abstract: raise one of its subclasses")
        super().__init__(*args)


class InvalidEventError(WsgisseError, ValueError):
    """An event field holds a value the event-stream format cannot carry.

    Raised when an event is built, never when it is sent, so that bad input can never
    inject a field or a second event into a stream.

    Attributes:
        field: the offending field: ``"event"``, ``"id"``, ``"retry"``, ``"data"``,
            ``"comment"`` or ``"event"`` for a whole event with no field at all.
        value: the value that was refused.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {field} {value!r}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class HistoryLostError(WsgisseError, LookupError):
    """A ``Last-Event-ID`` names an event the channel no longer holds (or never held).

    Attributes:
        last_event_id: the id the client presented.
        oldest_id: the oldest id the channel still holds, or ``None`` when it holds none.
    """

    def __init__(self, last_event_id: str, oldest_id: str | None) -> None:
        held = "nothing" if oldest_id is None else f"events from {oldest_id!r} on"
        super().__init__(
            f"event id {last_event_id!r} is not in the channel's history (it holds {held}); "
            "the events after it cannot be replayed"
        )
        self.last_event_id = last_event_id
        self.oldest_id = oldest_id


class ChannelClosedError(WsgisseError, RuntimeError):
    """The channel was closed: it takes no more publishes or subscribers."""


class SubscriptionClosedError(WsgisseError, EOFError):
    """A subscription has ended and holds nothing more to read.

    Attributes:
        reason: why it ended: ``"closed"`` (the subscriber closed it), ``"channel-closed"``,
            ``"slow"`` (it fell too far behind and was dropped so that it resumes with its
            ``Last-Event-ID``), ``"shutdown"`` or ``"revoked"``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"subscription ended: {reason}")
        self.reason = reason


class UnsafeConcurrencyError(WsgisseError, RuntimeError):
    """The way the process is set up would freeze the event loop or lose wake-ups.

    The message names the fix (for gevent: ``gevent.monkey.patch_all()`` before anything
    else is imported).
    """


class BackendUnavailableError(WsgisseError, ConnectionError):
    """The channel's backend (for example Redis) cannot be reached; nothing was published."""


class UnknownChannelError(WsgisseError, LookupError):
    """No channel of that name is served here (a framework integration's ``publish``).

    Attributes:
        name: the channel name asked for (``None``: none was named, and several are
            served, so one must be).
        known: the names served, when they are a fixed set (empty for a rule).
    """

    def __init__(self, name: str | None, known: tuple[str, ...] = ()) -> None:
        choices = f" (served here: {', '.join(known)})" if known else ""
        if name is None:
            message = f"several channels are served: name one with channel=NAME{choices}"
        else:
            message = f"no channel {name!r} is served here{choices}"
        super().__init__(message)
        self.name = name
        self.known = known
