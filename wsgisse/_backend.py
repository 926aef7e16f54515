"""Where a channel's events go when published, and where they come from.

A channel always fans out from its own in-process log. The backend decides how an event
reaches that log: :class:`MemoryBackend` appends it directly (one process), while a
shared backend (``wsgisse.backends.redis``) sends it to a broker, and one reader per
process appends what every process published to the logs of its local channels.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from . import _lifecycle

if TYPE_CHECKING:
    from ._channel import Channel
    from ._event import ServerSentEvent

__all__ = ["Backend", "MemoryBackend"]

log = logging.getLogger("wsgisse")


class Backend(Protocol):
    """What a :class:`~wsgisse.Channel` needs from a backend.

    Implementations must be safe to call from any thread or greenlet.
    """

    def attach(self, channel: Channel) -> None:
        """Start feeding ``channel``'s log.

        Called once, before the channel's first subscriber, so that a process that only
        publishes (a script, a task queue worker) starts no reader.
        """

    def prepare_resume(self, channel: Channel, last_event_id: str) -> None:
        """Make sure ``channel``'s log holds ``last_event_id`` if the backend knows it.

        Called before a subscriber resumes. A shared backend whose reader has not yet
        received that id (the client got it from another process a moment ago) waits,
        within a bound, for the reader to catch up, so that the resume is exact.
        """

    def detach(self, channel: Channel) -> None:
        """Stop feeding ``channel`` (called once, when it is closed)."""

    def publish(
        self,
        channel: Channel,
        body: ServerSentEvent,
        event_id: str | None,
        audience: frozenset[str] | None = None,
    ) -> str:
        """Publish ``body`` (an event without id) and return the id it was given.

        ``audience``: the users who may receive it (``None``: everybody); it must reach
        :meth:`Channel.append` with the event.

        Raises:
            BackendUnavailableError: the event could not be published.
        """


class MemoryBackend:
    """The default backend: the channel's own process is the whole world.

    Needs nothing; events reach the subscribers of this process only, and the history
    lives as long as the channel object. Use ``wsgisse.backends.redis`` when publishes
    must reach several processes or hosts.
    """

    def attach(self, channel: Channel) -> None:
        """Nothing to start: publishes go straight to the channel's log.

        Under several worker processes (as a server hook recorded them: see
        ``wsgisse.integrations.gunicorn``) it warns, once per process, that the channel's
        events reach only this worker's clients.
        """
        workers = _lifecycle.workers_to_warn_of()
        if workers is not None:
            log.warning(
                "wsgisse: channel %r keeps its events in this process' memory, but %d "
                "workers serve the app: an event published in one worker reaches only that "
                "worker's clients. Give the channel a shared backend "
                "(wsgisse.Channel(name, backend=RedisBackend(url)), from "
                "wsgisse.backends.redis), or run one worker (-w 1 -k gevent).",
                channel.name,
                workers,
            )

    def prepare_resume(self, channel: Channel, last_event_id: str) -> None:
        """Nothing to wait for: the log is the whole history."""

    def detach(self, channel: Channel) -> None:
        """Nothing to stop."""

    def publish(
        self,
        channel: Channel,
        body: ServerSentEvent,
        event_id: str | None,
        audience: frozenset[str] | None = None,
    ) -> str:
        """Append the event to ``channel``'s log and return its id."""
        return channel.append(body.encode(), event_id, audience)
