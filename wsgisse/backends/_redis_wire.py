"""The reader's XREAD, sent on its connection without redis-py's per-command layers.

Each event a worker receives costs one XREAD round: at a few events per second every
reply carries one entry, so the round's fixed cost is paid per event, in every worker.
Through ``Redis.xread`` that round is about twice what the socket work itself costs
(measured under gevent: ~285 µs against ~145 µs per event): the arguments are checked
and packed by generic code, the connection taken and given back under locks, the call
wrapped for retries and timed for redis-py's observability hooks, the reply reshaped
by a callback that ``_redis_replies`` then undoes. The reader needs none of it: it owns
its one connection, retries with its own backoff, and reads every shape of reply.

So, on a client pinned to one connection (``single_connection_client``, as the reader's
always is), the command is packed here and sent with the connection's own
``send_packed_command`` / ``read_response``: TLS, authentication, RESP2 or RESP3, a
Sentinel-managed or cluster-slot connection, and the disconnect on any error all stay
redis-py's. Any other client takes ``Redis.xread``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

__all__ = ["pack_command", "xread"]


def pack_command(args: list[bytes]) -> bytes:
    """``args`` as one RESP command (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    parts.extend(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args)
    return b"".join(parts)


def xread(client: redis.Redis, streams: Mapping[Any, Any], count: int, block_ms: int) -> Any:
    """``XREAD COUNT count BLOCK block_ms STREAMS keys... ids...``: the raw reply.

    The reply is redis-py's parser's, without the command's response callback: a
    list (RESP2) or a dict (RESP3) of each stream's entries, ``None`` on a timeout;
    :func:`~wsgisse.backends._redis_replies.split_streams` reads both.

    Raises:
        redis.RedisError: as ``Redis.xread`` (the connection is then disconnected, and
            reconnects at the next command).
    """
    connection = getattr(client, "connection", None)
    if connection is None:
        return client.xread(dict(streams), count=count, block=block_ms)
    # No single_connection_lock: the reader is the one user of its connection. The
    # connection's encoder, so that keys are the bytes redis-py's XADD wrote.
    encode = connection.encoder.encode
    keys = [encode(key) for key in streams]
    ids = [encode(position) for position in streams.values()]
    head = [b"XREAD", b"COUNT", b"%d" % count, b"BLOCK", b"%d" % block_ms, b"STREAMS"]
    connection.send_packed_command([pack_command(head + keys + ids)])
    return connection.read_response()
