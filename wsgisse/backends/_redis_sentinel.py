"""Following a Sentinel failover at once, for clients made by ``Sentinel.master_for``.

After ``SENTINEL FAILOVER`` (or a master that Sentinel saw as down but that still
answers) the old master keeps accepting writes and serving reads until Sentinel
reconfigures it as a replica, which can take seconds: writes it takes then are lost,
and a reader still connected to it sees none of the new master's events. redis-py's
sentinel pool only looks for the master when it opens a connection. So the backend asks
it (``get_master_address``, one round trip to a sentinel) at most once a second, before a
publish and in the reader's loop, and drops connections to an address that is no longer
the master's. Duck-typed: any other client is left alone.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

__all__ = ["CHECK_EVERY", "MasterWatch"]

logger = logging.getLogger("wsgisse.redis")

#: Seconds between two look-ups of the master's address: how late, at most, a failover
#: is noticed by a reader or a publisher that is otherwise content with its connection.
CHECK_EVERY = 1.0


class MasterWatch:
    """Asks a sentinel pool where the master is, at most every :data:`CHECK_EVERY` s."""

    def __init__(self) -> None:
        self._last = 0.0

    def check(self, client: redis.Redis, *, force: bool = False) -> None:
        """Drop ``client``'s connections to a server that is no longer the master.

        ``force``: now, however recent the last look-up (Redis said the data moved).
        Never raises: sentinels that cannot be reached leave things as they are.
        """
        pool: Any = client.connection_pool
        find = getattr(pool, "get_master_address", None)
        now = time.monotonic()
        if find is None or (not force and now - self._last < CHECK_EVERY):
            return
        self._last = now
        try:
            # The pool drops its idle connections itself when the address changed.
            address = tuple(find())
        except Exception as exc:  # noqa: BLE001 - a look-up that failed changes nothing
            logger.debug("could not ask the sentinels for the master: %s", exc)
            return
        pinned = getattr(client, "connection", None)  # The reader's one connection.
        if pinned is not None and (pinned.host, pinned.port) != address:
            logger.info("the master moved to %s:%s: reconnecting the reader", *address)
            pinned.disconnect()
            # A dropped connection reconnects on its next command to its own host and
            # port (redis-py asks the sentinels only when a pool opens one): point it
            # at the master.
            pinned.host, pinned.port = address
