"""The Redis backend with every client shape redis-py 8 makes, against a real redis-server.

A ``client=`` of the application's own shapes every reply: RESP2 or RESP3
(``protocol=3``), ``decode_responses`` on or off, from ``from_url`` or over a
``ConnectionPool``. The replies here are redis-py's own parsing of a real server's
answers, never hand-built. Also a TLS-only redis-server with a self-signed CA and an ACL
user with a password, over RESP3.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from _servers import (
    HOST,
    RedisServer,
    ServerProcess,
    find_program,
    free_port,
    self_signed_certificate,
)

import wsgisse
from wsgisse import Channel, SSEApp
from wsgisse.backends._redis_replies import read_entries, read_streams
from wsgisse.backends._redis_wire import pack_command, xread
from wsgisse.backends.redis import RedisBackend
from wsgisse.testing import SSETestClient, wait_until

if TYPE_CHECKING:
    from conftest import StartServer

pytestmark = pytest.mark.redis

READER = "wsgisse redis reader"

# (protocol, decode_responses, over a ConnectionPool)
SHAPES = [
    pytest.param(
        protocol,
        decode,
        pooled,
        id=f"resp{protocol}-{'str' if decode else 'bytes'}" + ("-pool" if pooled else ""),
    )
    for protocol in (2, 3)
    for decode in (False, True)
    for pooled in (False, True)
]


def make_client(url: str, protocol: int, decode: bool, pooled: bool, **options: Any) -> redis.Redis:
    if pooled:
        pool = redis.ConnectionPool.from_url(
            url, protocol=protocol, decode_responses=decode, **options
        )
        return redis.Redis(connection_pool=pool)
    return redis.Redis.from_url(url, protocol=protocol, decode_responses=decode, **options)


@pytest.fixture
def clients() -> Iterator[Callable[..., redis.Redis]]:
    made: list[redis.Redis] = []

    def make(*args: Any, **options: Any) -> redis.Redis:
        client = make_client(*args, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def backends() -> Iterator[Callable[..., RedisBackend]]:
    made: list[RedisBackend] = []

    def make(*args: Any, **options: Any) -> RedisBackend:
        backend = RedisBackend(*args, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name == READER], 5.0, "readers ended"
    )


def add_at_once(url: str, count: int, start: int, key: str = "wsgisse:news") -> list[str]:
    """XADD ``count`` wsgisse events in one transaction: one XREAD reads them together."""
    with redis.Redis.from_url(url) as writer:
        pipe = writer.pipeline(transaction=True)
        for n in range(start, start + count):
            pipe.xadd(key, {"body": wsgisse.ServerSentEvent({"n": n}).encode()})
        return [entry_id.decode() for entry_id in pipe.execute()]


def numbers(events: list[wsgisse.MessageEvent]) -> list[int]:
    return [json.loads(event.data)["n"] for event in events]


@pytest.mark.parametrize(("protocol", "decode", "pooled"), SHAPES)
def test_redis_py_replies_of_every_shape_are_read(
    redis_server: RedisServer,
    clients: Callable[..., redis.Redis],
    protocol: int,
    decode: bool,
    pooled: bool,
) -> None:
    client = clients(redis_server.url, protocol, decode, pooled)
    ids = add_at_once(redis_server.url, 3, 0) + add_at_once(redis_server.url, 2, 3, "wsgisse:b")
    streams = read_streams(client.xread({"wsgisse:news": "0-0", "wsgisse:b": "0-0"}))
    assert [(key, [e.text for e in entries]) for key, entries in streams] == [
        ("wsgisse:news", ids[:3]),
        ("wsgisse:b", ids[3:]),
    ]
    assert all(e.body is not None for _, entries in streams for e in entries)
    assert [e.text for e in read_entries(client.xrevrange("wsgisse:news", count=2))] == [
        ids[2],
        ids[1],
    ]
    assert read_streams(client.xread({"wsgisse:news": "$"}, block=10)) == []


@pytest.mark.parametrize(("protocol", "decode", "pooled"), SHAPES)
def test_the_readers_own_xread_reads_every_shape_and_times_out_empty(
    redis_server: RedisServer,
    clients: Callable[..., redis.Redis],
    protocol: int,
    decode: bool,
    pooled: bool,
) -> None:
    # Not pinned: redis-py's own xread.
    shared = clients(redis_server.url, protocol, decode, pooled)
    # Pinned to one connection of its pool, as the reader's client is: XREAD is packed
    # here and sent on the connection, and the reply is the parser's, without a callback.
    pinned = redis.Redis(connection_pool=shared.connection_pool, single_connection_client=True)
    ids = add_at_once(redis_server.url, 3, 0) + add_at_once(redis_server.url, 2, 3, "wsgisse:b")
    for client in (pinned, shared):
        reply = xread(client, {"wsgisse:news": "0-0", "wsgisse:b": ids[3]}, 2, 10)
        streams = read_streams(reply)
        assert (
            [(key, [e.text for e in entries]) for key, entries in streams]
            == [
                ("wsgisse:news", ids[:2]),  # COUNT 2
                ("wsgisse:b", ids[4:]),
            ]
        )
        assert read_streams(xread(client, {"wsgisse:news": "$"}, 10, 10)) == []
    # The pinned connection is still in step: the next command gets its own reply.
    assert pinned.ping() is True
    pinned.close()


def test_a_packed_command_is_resp_bulk_strings_that_redis_runs(redis_server: RedisServer) -> None:
    assert pack_command([b"SET", b"k\r\n", b""]) == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n"
    with socket.create_connection((HOST, redis_server.port), timeout=5) as sock:
        sock.sendall(pack_command([b"SET", "clé\r\n".encode(), b"v\x00"]))
        assert sock.recv(64) == b"+OK\r\n"
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.get("clé\r\n") == b"v\x00"


@pytest.mark.parametrize(("protocol", "decode", "pooled"), SHAPES)
def test_a_backend_on_a_given_client_of_every_shape_delivers_seeds_and_revokes(
    redis_server: RedisServer,
    clients: Callable[..., redis.Redis],
    backends: Callable[..., RedisBackend],
    protocol: int,
    decode: bool,
    pooled: bool,
) -> None:
    backend = backends(client=clients(redis_server.url, protocol, decode, pooled))
    news = Channel("news", backend=backend)
    first = news.publish({"n": -1})
    assert isinstance(first.id, str)
    with news.subscribe() as subscription:
        # Three entries in one reply, then exactly two, then one: the shapes that broke.
        sent = add_at_once(redis_server.url, 3, 0)
        sent += add_at_once(redis_server.url, 2, 3)
        sent.append(news.publish({"n": 5}, audience=["ann"]).id or "")
        received = b""
        while received.count(b"\n\n") < 5:
            received += subscription.get(timeout=5)
        assert [
            line.split(b": ", 1)[1].decode()
            for line in received.split(b"\n")
            if line.startswith(b"id: ")
        ] == sent[:5]
    # A fresh channel of that name is seeded from the stream through this client.
    again = Channel("news", backend=backend)
    endpoint = SSEApp({"news": again}, authorize=lambda environ, names: "ann", heartbeat=1.0)
    client = SSETestClient(endpoint)
    with client.stream("/events?channel=news", headers={"Last-Event-ID": first.id or ""}) as ann:
        assert numbers(ann.events(6)) == [0, 1, 2, 3, 4, 5]
        # A revocation from elsewhere is read from the control stream by this reader.
        backends(redis_server.url).revoke(user="ann")
        assert [e.type for e in ann.read_to_end()] == [wsgisse.END_EVENT]


# -- TLS, an ACL user with a password, RESP3 ------------------------------------------------


def tls_ready(ca_file: Path) -> Callable[[ServerProcess], bool]:
    context = ssl.create_default_context(cafile=str(ca_file))

    def ready(server: ServerProcess) -> bool:
        try:
            with (
                socket.create_connection((server.host, server.port), timeout=1.0) as raw,
                context.wrap_socket(raw, server_hostname=server.host) as sock,
            ):
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    return ready


@pytest.mark.parametrize("protocol", [2, 3])
def test_rediss_with_a_self_signed_ca_and_an_acl_user_publishes_subscribes_and_revokes(
    tmp_path: Path,
    start_server: StartServer,
    backends: Callable[..., RedisBackend],
    clients: Callable[..., redis.Redis],
    protocol: int,
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    acl = tmp_path / "users.acl"
    # Exactly the commands docs/redis.rst lists, the optional ones included.
    commands = (
        "+xadd +xtrim +xread +xrevrange +client|id +client|setname +hello +client|unblock "
        "+evalsha +script|load +get +set +hset +hgetall +hdel"
    )
    acl.write_text(f"user default on nopass ~* &* +@all\nuser sse on >pw ~wsgisse:* {commands}\n")
    options = {
        "port": 0,  # TLS only.
        "tls-port": port,
        "bind": HOST,
        "tls-cert-file": cert,
        "tls-key-file": key,
        "tls-ca-cert-file": cert,
        "tls-auth-clients": "no",
        "aclfile": acl,
        "save": "",
        "appendonly": "no",
        "dir": tmp_path,
    }
    argv = [find_program("redis-server")]
    argv += [arg for name, value in options.items() for arg in (f"--{name}", str(value))]
    server = start_server(ServerProcess(argv, port=port, name="redis-tls", ready=tls_ready(cert)))
    url = f"rediss://sse:pw@{HOST}:{server.port}/0?ssl_ca_certs={cert}"
    # One backend from the URL, one on a RESP3 (or RESP2) client of the app's own.
    publisher = backends(url)
    backend = backends(client=clients(url, protocol, False, False))
    news = Channel("news", backend=backend)
    endpoint = SSEApp({"news": news}, authorize=lambda environ, names: "ann", heartbeat=1.0)
    with SSETestClient(endpoint).stream("/events?channel=news") as ann:
        sent = Channel("news", backend=publisher).publish({"n": 1})
        event = ann.next_event()
        assert (numbers([event]), event.last_event_id) == ([1], sent.id)
        once = publisher.publish_once(Channel("news", backend=publisher), "k", {"n": 2})
        assert publisher.publish_once(Channel("news", backend=publisher), "k", {"n": 2}) == once
        assert ann.next_event().last_event_id == once.id
        publisher.revoke(user="ann")
        assert [e.type for e in ann.read_to_end()] == [wsgisse.END_EVENT]
    backend.report_stats(endpoint.stats)
    assert "wsgisse_workers 1" in backend.fleet_metrics()
    assert "pw" not in repr(publisher)
    wrong = backends(f"rediss://sse:wrong@{HOST}:{server.port}/0?ssl_ca_certs={cert}")
    with pytest.raises(wsgisse.BackendUnavailableError):
        Channel("news", backend=wrong).publish("x")
