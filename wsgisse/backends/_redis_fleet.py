"""The fleet-wide side of the Redis backend: revocations and metrics for every process.

:class:`FleetMixin` gives :class:`~wsgisse.backends.redis.RedisBackend` its ``revoke``
(through the control stream, see ``_redis_control``) and its fleet metrics (through a
hash of every process' stats, see ``_redis_stats``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis

from .._errors import BackendUnavailableError
from . import _redis_control
from ._redis_stats import StatsReporter, metrics_wsgi_app

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .._stats import Stats
    from ._redis_reader import Reader
    from ._redis_sentinel import MasterWatch

__all__ = ["FleetMixin"]

logger = logging.getLogger("wsgisse.redis")


class FleetMixin:
    """Revocation and metrics across processes (the backend's state is set by it)."""

    prefix: str
    _client: redis.Redis
    _closed: bool
    _reader: Reader
    _reporter: StatsReporter
    _reader_watch: MasterWatch

    @property
    def control_key(self) -> str:
        """The key of the stream that carries revocations to every process."""
        return f"{self.prefix}{_redis_control.CONTROL_SUFFIX}"

    # -- revoking -----------------------------------------------------------------------------

    def revoke(self, *, user: str | None = None, channel: str | None = None) -> str:
        """End, in every process using this Redis and prefix, the matching streams.

        Matching: the streams of ``user`` (any user if ``None``) that read a channel of
        this backend (named ``channel``, if given). Each is sent the
        :data:`~wsgisse.END_EVENT` event with reason ``"revoked"`` and closed: in this
        process before this returns; in the others as soon as their reader reads the
        revocation, which its blocking ``XREAD`` (of the control stream too) returns at
        once. No event published after this returns reaches any of them. Works from any
        process (an admin script, a task) with the same URL and prefix; one that serves
        no subscriber starts no reader. The app's ``authorize`` must refuse the user
        from now on, or the browser reconnects.

        Returns the control entry's stream id.

        Raises:
            ValueError: neither ``user`` nor ``channel`` given.
            BackendUnavailableError: Redis could not be reached or refused the write:
                the other processes were not told (retrying is safe: a revocation
                applied twice ends nothing more).
        """
        fields = _redis_control.encode(user, channel)
        if self._closed:
            raise BackendUnavailableError("cannot revoke: the backend is closed")
        try:
            added = self._client.xadd(
                self.control_key, fields, maxlen=_redis_control.CONTROL_MAXLEN
            )
        except redis.RedisError as exc:
            raise BackendUnavailableError(f"could not send the revocation: {exc}") from exc
        entry_id = added.decode() if isinstance(added, bytes) else str(added)
        _redis_control.apply([_redis_control.Revocation(entry_id, user, channel)], self._feeds)
        return entry_id

    def _feeds(self, channel: object) -> bool:
        return self._reader.feeds(channel)

    def _revoked(self, raw: Any) -> None:
        """The reader read control entries: end this process' streams they match."""
        revocations = _redis_control.read(raw)
        if revocations:
            ended = _redis_control.apply(revocations, self._feeds)
            logger.info("%r: %d revocations read, %d streams ended", self, len(revocations), ended)

    # -- fleet-wide metrics -------------------------------------------------------------------

    def report_stats(self, stats: Stats) -> None:
        """Share ``stats`` with the fleet: see :meth:`fleet_metrics`.

        This process writes its snapshot to Redis about once a second while it serves
        subscribers (from its reader), and at each scrape it answers. Call it in every
        process, at startup, with the ``stats`` of its endpoints.
        """
        self._reporter.add(stats)

    def fleet_metrics(self, prefix: str = "wsgisse") -> str:
        """Every reporting process' stats, in Prometheus' text format.

        One series per process, labelled ``worker="host:pid"``; sum them in the query
        (``sum without (worker) (wsgisse_connected_clients)``). A process that has not
        written for 10 s (it exited) is left out. ``{prefix}_workers`` counts them.

        Raises:
            BackendUnavailableError: Redis could not be reached.
        """
        try:
            return self._reporter.render(self._client, prefix)
        except redis.RedisError as exc:
            raise BackendUnavailableError(f"could not read the fleet's stats: {exc}") from exc

    def fleet_metrics_app(self, stats: Stats, prefix: str = "wsgisse") -> WSGIApplication:
        """:meth:`report_stats` ``stats``, and a WSGI app serving :meth:`fleet_metrics`.

        Mount it at ``/metrics`` like :func:`wsgisse.metrics_app`; it answers 503 while
        Redis is unreachable.
        """
        self.report_stats(stats)
        return metrics_wsgi_app(lambda: self.fleet_metrics(prefix))

    def _each_round(self, client: redis.Redis) -> None:
        """After each XREAD of the reader: follow a failover, write this process' stats."""
        self._reader_watch.check(client)
        if not self._reporter.active:
            return
        try:
            self._reporter.push(client, due_only=True)
        except redis.RedisError as exc:
            logger.debug("%r: could not write this process' stats: %s", self, exc)
