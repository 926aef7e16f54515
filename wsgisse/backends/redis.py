"""Redis Streams as the shared log of wsgisse channels, for every worker on every host.

::

    import wsgisse
    from wsgisse.backends.redis import RedisBackend

    backend = RedisBackend("redis://127.0.0.1:6379/0")   # one per process, shared
    channel = wsgisse.Channel("news", backend=backend)
    channel.publish({"title": "hello"})                   # from any process

A publish is one ``XADD`` to the stream ``{prefix}{channel name}``, capped by
``MAXLEN ~`` (and trimmed by ``MINID`` for ``max_age``). Event ids are the stream ids,
so a browser's ``Last-Event-ID`` resumes on any worker of any host.

In a process that serves subscribers, the backend runs one reader (a greenlet under
gevent monkey-patching, a thread otherwise) for all its channels: one blocking ``XREAD``
on a connection of its own follows every attached stream, and each entry is appended to
the logs of the local channels of that name, from which subscribers are served exactly
as with the memory backend. A process that only publishes (a script, a task queue
worker) never starts a reader. The same XREAD reads the control stream that carries
``revoke()`` to every process. See ``docs/redis.rst`` for sizing, failures, Sentinel and
``wsgisse.backends.redis_cluster``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

try:
    import redis
except ImportError as exc:
    if exc.name is not None and exc.name.split(".")[0] != "redis":
        raise  # redis is installed but broken: show what it lacks
    raise ImportError(
        "wsgisse.backends.redis needs the redis package: pip install wsgisse[redis]",
        name="redis",
    ) from exc

from .._errors import BackendUnavailableError, InvalidEventError
from .._event import ServerSentEvent
from . import _redis_control
from ._redis_fleet import FleetMixin
from ._redis_once import ONCE_SCRIPT, ONCE_TTL, marker_key, script_args
from ._redis_reader import READ_MARGIN, SYNC_TIMEOUT, Reader
from ._redis_replies import AUDIENCE_FIELD, BODY_FIELD, encode_audience, parse_id, redact_url
from ._redis_sentinel import MasterWatch
from ._redis_stats import StatsReporter
from ._redis_write import attempt_write, no_retry, oldest_kept, replicated, xadd

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

    from .._channel import Channel

__all__ = ["DEFAULT_URL", "PUBLISH_TIMEOUT", "SYNC_TIMEOUT", "RedisBackend"]

logger = logging.getLogger("wsgisse.redis")

#: redis-py's own default URL: a local Redis, database 0.
DEFAULT_URL = "redis://127.0.0.1:6379/0"

#: Seconds a publish waits for Redis to connect and to answer, per attempt: a request
#: that publishes is never held longer than that while Redis is unreachable. A
#: ``socket_timeout`` / ``socket_connect_timeout`` in the URL's query string wins.
PUBLISH_TIMEOUT = 2.0


class RedisBackend(FleetMixin):
    """A :class:`~wsgisse.Backend` that keeps each channel's events in a Redis stream.

    Share one object among all the channels of a process: each object runs one reader
    (and holds one connection for it) in each process that serves subscribers.

    Args:
        url: the Redis URL, read by ``redis.Redis.from_url``: ``redis://``, ``rediss://``
            (TLS; ``?ssl_ca_certs=...`` and friends in the query string), ``unix://``;
            a password as ``redis://:PASSWORD@host``. Ignored when ``client`` is given.
        prefix: put before a channel's name to make its stream's key.
        maxlen: the stream's length cap (``XADD MAXLEN ~``: Redis trims in whole nodes,
            so a stream may hold up to about 100 more). ``None``: no length cap. Size it
            as events per second times the seconds a client may be away and still be
            replayed; a channel's ``history`` beyond it cannot be replayed after a restart.
        max_age: also drop entries older than this many seconds (``XTRIM MINID``, by the
            publisher's clock against the ids' milliseconds).
        client: a ``redis.Redis`` to publish with, instead of one made from ``url``; the
            reader then takes its connection from the same pool, and the client's own
            timeouts and retries apply.
        publish_retries: how many times a publish is tried again after a connection error
            before :class:`~wsgisse.BackendUnavailableError`. 0 by default: a retry after
            a reply was lost may store the event twice.
        retry_delay: seconds between those attempts.
        replicas: wait (``WAIT``) until this many replicas hold each published event,
            up to ``replica_timeout`` seconds, and raise
            :class:`~wsgisse.BackendUnavailableError` when fewer did: then a failover
            cannot lose an event whose publish returned. 0: do not wait.
        replica_timeout: see ``replicas``.
        block_timeout: seconds one ``XREAD`` of the reader blocks. The backend ends a
            blocked ``XREAD`` with ``CLIENT UNBLOCK`` to follow a new channel or to stop;
            where Redis refuses that command, this bounds how late either happens.

    Raises:
        ValueError: a limit is out of range, or the URL is not one redis-py reads.
    """

    def __init__(  # noqa: PLR0913 - every option is keyword-only and named at each call
        self,
        url: str = DEFAULT_URL,
        *,
        prefix: str = "wsgisse:",
        maxlen: int | None = 10_000,
        max_age: float | None = None,
        client: redis.Redis | None = None,
        publish_retries: int = 0,
        retry_delay: float = 0.1,
        block_timeout: float = 1.0,
        replicas: int = 0,
        replica_timeout: float = 0.5,
    ) -> None:
        if maxlen is not None and maxlen < 1:
            raise ValueError(f"maxlen must be at least 1 or None, not {maxlen}")
        if max_age is not None and not max_age > 0:
            raise ValueError(f"max_age must be positive seconds or None, not {max_age}")
        if publish_retries < 0:
            raise ValueError(f"publish_retries must be 0 or more, not {publish_retries}")
        if not retry_delay >= 0:
            raise ValueError(f"retry_delay must be 0 or more seconds, not {retry_delay}")
        if not block_timeout > 0:
            raise ValueError(f"block_timeout must be positive seconds, not {block_timeout}")
        if replicas < 0 or not replica_timeout > 0:
            raise ValueError("replicas must be 0 or more, and replica_timeout positive seconds")
        self._replicas = (replicas, round(replica_timeout * 1000)) if replicas else None
        self.prefix = prefix
        self.maxlen = maxlen
        self.max_age = max_age
        self.publish_retries = publish_retries
        self.retry_delay = retry_delay
        self.block_timeout = block_timeout
        self._url = url
        self._owns_client = client is None
        if client is None:
            client = redis.Redis.from_url(
                url,
                socket_timeout=PUBLISH_TIMEOUT,
                socket_connect_timeout=PUBLISH_TIMEOUT,
                retry=no_retry(),
                client_name="wsgisse-publish",
            )
        self._client = client
        self._once_script = client.register_script(ONCE_SCRIPT)
        self._closed = False
        self._reporter = StatsReporter(prefix)
        self._publisher_watch = MasterWatch()
        self._reader_watch = MasterWatch()
        self._reader = Reader(
            connect=self._reader_client,
            unblock=self._unblock,
            block_timeout=block_timeout,
            name=repr(self),
            control_key=self.control_key,
            on_control=self._revoked,
            on_round=self._each_round,
        )

    def __repr__(self) -> str:
        where = redact_url(self._url) if self._owns_client else "a given client"
        return f"<RedisBackend {where} prefix={self.prefix!r}>"

    def stream_key(self, name: str) -> str:
        """The key of the Redis stream that holds channel ``name``'s events.

        Raises:
            ValueError: ``name`` is ``"@control"``, the key of the control stream.
        """
        if name == _redis_control.CONTROL_SUFFIX:
            raise ValueError(f"the channel name {name!r} is reserved by the Redis backend")
        return f"{self.prefix}{name}"

    # -- publishing ---------------------------------------------------------------------------

    def publish(
        self,
        channel: Channel,
        body: ServerSentEvent,
        event_id: str | None,
        audience: frozenset[str] | None = None,
    ) -> str:
        """Append the event to the channel's stream and return its stream id.

        The event reaches subscribers (here too) through the reader, never directly.
        ``audience`` travels with it (a JSON array in the entry's ``audience`` field), so
        that every process delivers and replays it to those users only.

        Raises:
            InvalidEventError: Redis refused ``event_id``: it must be a stream id
                (``"<ms>-<seq>"``, or ``"<ms>-*"``) greater than the stream's last one.
            BackendUnavailableError: Redis could not be reached (after
                ``publish_retries`` more attempts) or refused the write (out of memory, a
                read-only replica, a key of another type); nothing was published.
        """
        key = self.stream_key(channel.name)
        fields: dict[FieldT, EncodableT] = {BODY_FIELD: body.encode()}
        if audience is not None:
            fields[AUDIENCE_FIELD] = encode_audience(audience)
        xadd_id = "*" if event_id is None else event_id
        return self._attempts(key, event_id, lambda: self._xadd(key, fields, xadd_id))

    def publish_once(
        self,
        channel: Channel,
        key: str,
        data: object,
        *,
        event: str | None = None,
        retry: int | None = None,
        audience: Iterable[str] | None = None,
        ttl: int = ONCE_TTL,
    ) -> ServerSentEvent:
        """Publish an event at most once per ``key``, however often this is retried.

        Use it where a retry after a failure must never store the event twice: a
        publish that raised :class:`~wsgisse.BackendUnavailableError` after a timeout
        may have been stored (or may be stored later, by a Redis that was stuck), so
        its outcome is unknown. Call again with the same ``key``: if an earlier
        attempt stored the event, nothing is added and its id is returned. ``key``
        names the event in your terms (``"order-42-shipped"``); it is remembered for
        ``ttl`` seconds (a day by default). ``publish_retries`` applies, and is safe
        here. The arguments are :meth:`wsgisse.Channel.publish`'s; the id is always
        Redis'. Runs one Lua script (an ACL user needs ``+evalsha +script|load``).

        Returns:
            The event as stored, with its id (the first attempt's, on a repeat).

        Raises:
            InvalidEventError: a field cannot be carried by the event-stream format.
            BackendUnavailableError: as for :meth:`publish`; the outcome is unknown
                after a timeout, and calling again with ``key`` settles it.
        """
        if data is None:
            raise InvalidEventError("data", data, "a browser dispatches no event without data")
        body = ServerSentEvent(data, event=event, retry=retry)
        stream = self.stream_key(channel.name)
        fields: dict[FieldT, EncodableT] = {BODY_FIELD: body.encode()}
        if audience is not None:
            fields[AUDIENCE_FIELD] = encode_audience(frozenset(audience))
        marker = marker_key(stream, key)

        def run() -> Any:
            args = script_args(ttl, self.maxlen, self._minid(), fields)
            if self._replicas is None:
                return self._once_script(keys=[stream, marker], args=args)
            pipe = self._client.pipeline(transaction=False)
            self._once_script(keys=[stream, marker], args=args, client=pipe)
            return replicated(pipe, stream, self._replicas)

        sent_id = self._attempts(stream, None, run)
        return ServerSentEvent(data, event=event, retry=retry, id=sent_id)

    def _minid(self) -> str | None:
        return oldest_kept(self.max_age)

    def _attempts(self, key: str, event_id: str | None, call: Callable[[], Any]) -> str:
        if self._closed:
            raise BackendUnavailableError(f"cannot publish to {key!r}: the backend is closed")
        self._publisher_watch.check(self._client)
        return attempt_write(
            call,
            key,
            event_id,
            self.publish_retries,
            self.retry_delay,
            lambda: self._publisher_watch.check(self._client, force=True),
        )

    def _xadd(self, key: str, fields: dict[FieldT, EncodableT], xadd_id: str) -> Any:
        return xadd(self._client, key, fields, xadd_id, self.maxlen, self.max_age, self._replicas)

    # -- following channels ---------------------------------------------------------------------

    def attach(self, channel: Channel) -> None:
        """Follow ``channel``'s stream, and fill its log with the stream's newest entries.

        Starts this process' reader if it is not running, and returns once the reader has
        seeded the log (with as many entries as the log holds), so that the first
        subscribers resume from Redis' history. If Redis does not answer within
        :data:`SYNC_TIMEOUT`, returns anyway: the subscribers stay connected (heartbeats
        flow) and receive, once Redis is back, the events published from now on.
        """
        key = self.stream_key(channel.name)
        if self._closed:
            logger.warning("%r is closed: channel %r receives nothing", self, channel.name)
            return
        if self.maxlen is not None and channel.log_capacity > self.maxlen:
            logger.warning(
                "channel %r keeps %d events but its stream %r only about %d: a client that "
                "lands on another worker is replayed no more than the stream holds",
                channel.name,
                channel.log_capacity,
                key,
                self.maxlen,
            )
        self._reader.follow(channel, key)

    def prepare_resume(self, channel: Channel, last_event_id: str) -> None:
        """Wait (at most :data:`SYNC_TIMEOUT`) until the reader has passed ``last_event_id``.

        A client may present an id it received from another worker a moment before this
        worker's reader read it: waiting makes its resume exact. An id that is no stream
        id, or one the reader has passed already, returns at once.
        """
        target = parse_id(last_event_id)
        if target is not None and not self._reader.wait_past(channel, target):
            logger.debug(
                "the reader did not reach %s in %r within %s s",
                last_event_id,
                self.stream_key(channel.name),
                SYNC_TIMEOUT,
            )

    def detach(self, channel: Channel) -> None:
        """Stop feeding ``channel``.

        Detaching the last channel stops the reader, and returns once it has ended (within
        ``block_timeout`` plus 2 s at most), its connection closed.
        """
        self._reader.unfollow(channel)

    def close(self) -> None:
        """Stop following every channel, end the reader, and close the connections.

        Waits (at most ``block_timeout`` plus 2 s) for the reader to end. Afterwards a
        publish raises :class:`~wsgisse.BackendUnavailableError` and the channels that
        used the backend receive nothing more. Idempotent. A ``client`` that was passed
        in is left open.
        """
        if self._closed:
            return
        self._closed = True
        if not self._reader.close(self.block_timeout + READ_MARGIN):
            logger.warning(
                "%r: the reader did not end within %s s", self, self.block_timeout + READ_MARGIN
            )
        if self._owns_client:
            self._client.close()

    def _reader_client(self) -> redis.Redis:
        """The reader's client: a connection of its own, with a timeout beyond its XREAD."""
        if not self._owns_client:
            # Pinned to one connection of the pool: the id that CLIENT UNBLOCK names must
            # be the connection's that blocks in XREAD, not any the pool hands out.
            return redis.Redis(
                connection_pool=self._client.connection_pool, single_connection_client=True
            )
        return redis.Redis.from_url(
            self._url,
            socket_timeout=self.block_timeout + READ_MARGIN,
            socket_connect_timeout=PUBLISH_TIMEOUT,
            retry=no_retry(),
            client_name="wsgisse-reader",
            single_connection_client=True,
        )

    def _unblock(self, client_id: int) -> bool:
        """End the reader's blocked XREAD; false if Redis says it was not blocked.

        Redis may refuse (``CLIENT UNBLOCK`` is in the ``@dangerous`` ACL category): the
        XREAD then returns by itself within ``block_timeout``.
        """
        try:
            return bool(self._client.client_unblock(client_id))
        except redis.RedisError as exc:
            logger.debug(
                "CLIENT UNBLOCK failed (%s): the reader follows within %s s",
                exc,
                self.block_timeout,
            )
            return True
