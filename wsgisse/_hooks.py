"""Connection hooks of :class:`~wsgisse.SSEApp`: a snapshot on connect, presence on leave.

An app that shows state (who is online, a document, a game board) needs two things a
channel alone does not give: the *current* state sent to a client before the live
events, and a signal when a client leaves. ``SSEApp(on_connect=..., on_disconnect=...)``
gives both, exactly once per stream.

Ordering: the client is subscribed *before* ``on_connect`` runs, so nothing published
after the snapshot was taken can be missed; an event published while the hook runs may
already be reflected in the snapshot and still arrive after it, so apply events
idempotently (a set of names, a full state, a version number). The snapshot goes out in
the stream's first chunk, right after the preamble (the ``: wsgisse`` comment and the
``retry``) and before any replayed or live event: never between a replayed and a live
one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._event import ServerSentEvent

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = [
    "Connection",
    "OnConnect",
    "OnDisconnect",
    "call_on_connect",
    "encode_snapshot",
    "run_on_disconnect",
]

log = logging.getLogger("wsgisse")


@dataclass(frozen=True, eq=False)
class Connection:
    """One admitted event stream, as the connection hooks see it.

    Compared and hashed by identity, so it may be kept in a set of who is online.

    Attributes:
        environ: the WSGI environ of the stream request (its query string, cookies and
            headers; after the stream ended, what it was).
        channels: the names of the channels the stream follows, in the order asked.
        user: the user the ``authorize`` hook admitted (``None``: anonymous, or no hook).
        address: the client's address, as counted by the per-client cap.
        last_event_id: the ``Last-Event-ID`` it resumes from (``None``: a first visit).
        id: a random id of this stream, unique within the process (16 hex digits).
    """

    environ: WSGIEnvironment = field(repr=False)
    channels: tuple[str, ...]
    user: str | None
    address: str
    last_event_id: str | None
    id: str = field(default_factory=lambda: secrets.token_hex(8))


#: What ``on_connect`` may return: nothing, one event, or several, sent first.
Snapshot = ServerSentEvent | Iterable[ServerSentEvent] | None
#: ``on_connect(connection)``: called once a stream is admitted and subscribed, before
#: its first byte; what it returns is the snapshot. An exception refuses the stream.
OnConnect = Callable[[Connection], Snapshot]
#: ``on_disconnect(connection)``: called once when an admitted stream closes, whatever
#: the cause (the client left, shutdown, revoke, lifetime); an exception is logged.
OnDisconnect = Callable[[Connection], object]


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """The bytes of what ``on_connect`` returned.

    Raises:
        TypeError: it is not ``None``, a :class:`~wsgisse.ServerSentEvent` or an
            iterable of them.
        ValueError: an event carries an id: the browser would take it as its
            ``Last-Event-ID`` and resume from it, skipping or repeating events.
    """
    if snapshot is None:
        return b""
    events = [snapshot] if isinstance(snapshot, ServerSentEvent) else list(snapshot)
    chunks = []
    for event in events:
        if not isinstance(event, ServerSentEvent):
            raise TypeError(
                f"on_connect must return None, a ServerSentEvent or an iterable of them, "
                f"not {type(event).__name__}"
            )
        if event.id is not None:
            raise ValueError(
                f"a snapshot event must have no id (got {event.id!r}): the browser would "
                "resume from it, skipping or repeating the channel's events"
            )
        chunks.append(event.encode())
    return b"".join(chunks)


def call_on_connect(hook: OnConnect | None, connection: Connection) -> bytes | None:
    """The encoded snapshot ``hook`` returns (``b""``: none); ``None`` if it failed.

    A failure (the hook raised, or returned what :func:`encode_snapshot` refuses) is
    logged with its traceback: the endpoint then refuses the stream with ``500``.
    """
    if hook is None:
        return b""
    try:
        return encode_snapshot(hook(connection))
    except Exception:
        log.exception(
            "wsgisse: on_connect failed for stream %s of %r on %s; answered 500",
            connection.id,
            connection.user,
            ",".join(connection.channels),
        )
        return None


def run_on_disconnect(hook: OnDisconnect, connection: Connection) -> None:
    """Call ``hook``; an exception is logged, never raised (cleanup must go on)."""
    try:
        hook(connection)
    except Exception:
        log.exception(
            "wsgisse: on_disconnect failed for stream %s of %r on %s",
            connection.id,
            connection.user,
            ",".join(connection.channels),
        )
