"""The control events wsgisse itself sends: what a page hears when wsgisse steps in.

Two event types, both with JSON data, both built here and nowhere else:

* :data:`HISTORY_LOST_EVENT` first on a stream whose ``Last-Event-ID`` could not be
  resumed, so that the page reloads its state instead of silently missing events;
* :data:`END_EVENT` last on a stream that wsgisse ends on purpose, with the reason and a
  jittered ``retry`` that spreads the reconnects.

Pure: no I/O, no lock, no clock (the jitter is drawn from ``random``).
"""

from __future__ import annotations

import json
import random

from ._event import ServerSentEvent

__all__ = ["END_EVENT", "END_REASONS", "HISTORY_LOST_EVENT", "farewell", "history_lost"]

#: The event type a subscriber receives first when its ``Last-Event-ID`` cannot be
#: resumed: the id is unknown (another process, a restart) or older than the history the
#: channel holds. Its data is JSON: ``{"lastEventId": "...", "oldestId": "..." or null}``.
#: Listen for it with ``source.addEventListener("wsgisse-history-lost", ...)`` and reload
#: whatever state the page shows.
HISTORY_LOST_EVENT = "wsgisse-history-lost"

#: The event type of the last event a stream sends when wsgisse ends it on purpose. Its
#: data is JSON ``{"reason": ...}``: ``"shutdown"`` (the server is stopping or reloading),
#: ``"lifetime"`` (the stream reached its maximum age), ``"capacity"`` (the server is
#: full: come back later) or ``"revoked"`` (the client lost access: do not come back).
#: For the first three the browser reconnects by itself after the ``retry`` sent with
#: it; on ``"revoked"`` a page should call ``source.close()``.
END_EVENT = "wsgisse-end"

#: The reasons a stream ends with :data:`END_EVENT`; any other end closes it silently.
END_REASONS = frozenset({"shutdown", "lifetime", "capacity", "revoked"})


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def history_lost(last_event_id: str, oldest_id: str | None) -> bytes:
    """The :data:`HISTORY_LOST_EVENT` frame for a client that presented ``last_event_id``.

    ``oldest_id`` is the oldest id the channel still holds (``None``: it holds none).
    """
    data = _json({"lastEventId": last_event_id, "oldestId": oldest_id})
    return ServerSentEvent(data, event=HISTORY_LOST_EVENT).encode()


def farewell(reason: str, retry: int | None, jitter: int) -> bytes:
    """The last frame of a stream ended on purpose: :data:`END_EVENT` with a retry.

    The retry is ``retry`` plus a random share of ``jitter`` milliseconds, so that
    thousands of clients told to reconnect at once do not all come back at once.
    """
    delay = None if retry is None else retry + random.randint(0, max(jitter, 0))  # noqa: S311
    return ServerSentEvent(_json({"reason": reason}), event=END_EVENT, retry=delay).encode()
