"""Redis Cluster: channels spread over the shards, each in one slot, one reader per bucket.

::

    from wsgisse.backends.redis_cluster import RedisClusterBackend

    backend = RedisClusterBackend("redis://node-1:6379/0", buckets=16)
    news = wsgisse.Channel("news", backend=backend)

A cluster refuses a command whose keys live in different slots, and the reader's point
is one ``XREAD`` for many streams. So the channels are dealt into ``buckets`` by a
stable hash of their names, and a bucket's keys share one hash tag (``wsgisse:{b3}news``,
its control stream ``wsgisse:{b3}@control``): a bucket is one slot, on one shard, read
by one reader per process, in one ``XREAD``. Each bucket is an ordinary
:class:`~wsgisse.backends.redis.RedisBackend` whose client's pool connects to the node
that owns the bucket's slot now, and moves (like a Sentinel pool) when the cluster
says another node does (a failover, a resharding).
"""

from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING, Any

import redis
import redis.cluster

from .._errors import BackendUnavailableError
from .._sync import native_lock
from ._redis_write import no_retry
from .redis import PUBLISH_TIMEOUT, RedisBackend

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import WSGIApplication

    from .._channel import Channel
    from .._event import ServerSentEvent
    from .._stats import Stats

__all__ = ["RedisClusterBackend", "SlotPool"]

# The cluster's slot map is read again at most this often (CLUSTER SLOTS), however
# many publishes were answered MOVED at once.
_REFRESH_EVERY = 0.1


class SlotPool(redis.ConnectionPool):
    """Connections to the master that owns ``key``'s slot, wherever that is now.

    Offers ``get_master_address`` as redis-py's Sentinel pool does, which the backend
    calls at most once a second (see ``_redis_sentinel``): it reads the cluster's slot
    map again, and points new connections at the slot's owner if it moved.
    """

    def __init__(self, cluster: redis.cluster.RedisCluster, key: str, **kwargs: Any) -> None:
        self._cluster = cluster
        self._key = key
        self._refresh_lock = native_lock()
        self._refreshed = 0.0
        host, port = self._owner()
        super().__init__(host=host, port=port, **kwargs)

    def _owner(self) -> tuple[str, int]:
        node = self._cluster.get_node_from_key(self._key, replica=False)  # type: ignore[no-untyped-call]
        return str(node.host), int(node.port)

    def get_master_address(self) -> tuple[str, int]:
        """The address of the slot's master now; idle connections elsewhere are dropped."""
        with self._refresh_lock:
            due = time.monotonic() - self._refreshed >= _REFRESH_EVERY
            if due:
                self._refreshed = time.monotonic()
        if due:
            self._cluster.nodes_manager.initialize()
        address = self._owner()
        kwargs = self.connection_kwargs
        if (kwargs.get("host"), kwargs.get("port")) != address:
            kwargs["host"], kwargs["port"] = address  # For the connections made from now.
            # A connection reconnects to its own host and port: repoint the ones made
            # already, and drop their sockets (one in use fails, and is retried).
            with self._lock:
                made = [*self._available_connections, *self._in_use_connections]
            for connection in made:
                if (connection.host, connection.port) != address:
                    connection.host, connection.port = address
                    connection.disconnect()
        return address


class RedisClusterBackend:
    """A :class:`~wsgisse.Backend` on Redis Cluster: the channels spread over the shards.

    Args:
        url: a node of the cluster (``redis://host:port/0``; ``rediss://`` for TLS), read by
            ``RedisCluster.from_url``; the others are found from it.
        buckets: how many groups the channels are dealt into (by a stable hash of the
            name). Each is one slot, on one shard, and one reader connection per process:
            use at least as many as the cluster has masters. Every process sharing the
            channels must use the same number (it is part of the keys).
        prefix: put before each key, before the bucket's hash tag.
        options: the other keyword arguments of
            :class:`~wsgisse.backends.redis.RedisBackend` (``maxlen``, ``max_age``,
            ``publish_retries``, ``retry_delay``, ``block_timeout``, ``replicas``...),
            for every bucket.

    Raises:
        ValueError: ``buckets`` below 1, or an option out of range.
    """

    def __init__(
        self, url: str, *, buckets: int = 16, prefix: str = "wsgisse:", **options: Any
    ) -> None:
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, not {buckets}")
        self.prefix = prefix
        self._cluster = redis.cluster.RedisCluster.from_url(
            url, socket_timeout=PUBLISH_TIMEOUT, socket_connect_timeout=PUBLISH_TIMEOUT
        )
        default = self._cluster.get_default_node()  # type: ignore[no-untyped-call]
        node_pool = default.redis_connection.connection_pool
        kwargs = {k: v for k, v in node_pool.connection_kwargs.items() if k not in ("host", "port")}
        kwargs["retry"] = no_retry()
        self._buckets: list[RedisBackend] = []
        self._clients: list[redis.Redis] = []
        for number in range(buckets):
            bucket_prefix = f"{prefix}{{b{number}}}"
            pool = SlotPool(
                self._cluster,
                f"{bucket_prefix}@control",
                connection_class=node_pool.connection_class,
                **kwargs,
            )
            client = redis.Redis(connection_pool=pool)
            self._clients.append(client)
            self._buckets.append(RedisBackend(client=client, prefix=bucket_prefix, **options))

    def __repr__(self) -> str:
        return f"<RedisClusterBackend {len(self._buckets)} buckets prefix={self.prefix!r}>"

    def bucket(self, name: str) -> RedisBackend:
        """The bucket (a backend of its own) that holds channel ``name``."""
        return self._buckets[zlib.crc32(name.encode("utf-8")) % len(self._buckets)]

    def stream_key(self, name: str) -> str:
        """The key of the stream of channel ``name``: ``{prefix}{b<bucket>}{name}``."""
        return self.bucket(name).stream_key(name)

    def attach(self, channel: Channel) -> None:
        """See :meth:`RedisBackend.attach`: the channel's bucket follows it."""
        self.bucket(channel.name).attach(channel)

    def prepare_resume(self, channel: Channel, last_event_id: str) -> None:
        """See :meth:`RedisBackend.prepare_resume`."""
        self.bucket(channel.name).prepare_resume(channel, last_event_id)

    def detach(self, channel: Channel) -> None:
        """See :meth:`RedisBackend.detach`."""
        self.bucket(channel.name).detach(channel)

    def publish(
        self,
        channel: Channel,
        body: ServerSentEvent,
        event_id: str | None,
        audience: frozenset[str] | None = None,
    ) -> str:
        """See :meth:`RedisBackend.publish`."""
        return self.bucket(channel.name).publish(channel, body, event_id, audience)

    def publish_once(
        self,
        channel: Channel,
        key: str,
        data: object,
        *,
        event: str | None = None,
        retry: int | None = None,
        audience: Iterable[str] | None = None,
    ) -> ServerSentEvent:
        """See :meth:`RedisBackend.publish_once` (the marker is in the channel's slot)."""
        return self.bucket(channel.name).publish_once(
            channel, key, data, event=event, retry=retry, audience=audience
        )

    def revoke(self, *, user: str | None = None, channel: str | None = None) -> list[str]:
        """See :meth:`RedisBackend.revoke`: sent to every bucket's control stream (or to
        the channel's bucket only), and so to every reader of every process.

        No event published after this returns reaches a revoked stream: each bucket's
        revocation was added before any such event of its channels.

        Returns the control entries' ids.

        Raises:
            ValueError: neither ``user`` nor ``channel`` given.
            BackendUnavailableError: a shard could not be reached (the buckets before
                it were told; retrying is safe).
        """
        targets = self._buckets if channel is None else [self.bucket(channel)]
        return [bucket.revoke(user=user, channel=channel) for bucket in targets]

    def report_stats(self, stats: Stats) -> None:
        """See :meth:`RedisBackend.report_stats` (kept in the first bucket's slot)."""
        self._buckets[0].report_stats(stats)

    def fleet_metrics(self, prefix: str = "wsgisse") -> str:
        """See :meth:`RedisBackend.fleet_metrics`."""
        return self._buckets[0].fleet_metrics(prefix)

    def fleet_metrics_app(self, stats: Stats, prefix: str = "wsgisse") -> WSGIApplication:
        """See :meth:`RedisBackend.fleet_metrics_app`."""
        return self._buckets[0].fleet_metrics_app(stats, prefix)

    def close(self) -> None:
        """Close every bucket (their readers end), then the cluster client. Idempotent."""
        for bucket in self._buckets:
            bucket.close()
        for client in self._clients:
            client.close()
        try:
            self._cluster.close()
        except redis.RedisError as exc:  # pragma: no cover - closing sockets
            raise BackendUnavailableError(f"could not close the cluster client: {exc}") from exc
