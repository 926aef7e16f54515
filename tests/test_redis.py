"""The Redis backend against a real redis-server: in process, and behind gunicorn -k gevent.

Every Redis is a redis-server of the test's own on a free port (``redis_server`` from
conftest.py keeps nothing on disk; ``durable_redis`` below fsyncs every write, so that a
``kill -9`` loses nothing it acknowledged). The live tests serve
``tests/live/redis_app.py`` with ``gunicorn -w 3 -k gevent`` and publish from that file
run as a script, in a process of its own, as a cron job or a task would.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest
import redis
from _servers import (
    HOST,
    LIVE_DIR,
    EventStream,
    RedisServer,
    ServerProcess,
    find_program,
    free_port,
    python_env,
)
from _servers import redis_server as make_redis_server
from conftest import serve_on_three_workers

import wsgisse
from wsgisse import BackendUnavailableError, Channel, InvalidEventError, MessageEvent
from wsgisse.backends._redis_replies import parse_id, redact_url
from wsgisse.backends.redis import SYNC_TIMEOUT, RedisBackend
from wsgisse.testing import wait_until

if TYPE_CHECKING:
    from conftest import StartServer

pytestmark = pytest.mark.redis

READER = "wsgisse redis reader"
APP = "tests.live.redis_app:app"
PUBLISHER = LIVE_DIR / "redis_app.py"


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def inspect(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client of the test's Redis, to look at what the backend did."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def durable_redis(start_server: StartServer) -> RedisServer:
    """A redis-server that fsyncs each write to its append-only file before it answers.

    What it acknowledged survives ``kill -9`` and is back after :meth:`start`, so a test
    can tell "Redis lost it" from "wsgisse lost it".
    """
    server = make_redis_server()
    server.argv[server.argv.index("--appendonly") + 1] = "yes"
    server.argv += ["--appendfsync", "always"]
    return start_server(server)


def reader_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == READER]


def frame(data: str, event_id: str) -> bytes:
    return f"data: {data}\nid: {event_id}\n\n".encode()


def take(subscription: wsgisse.Subscription, count: int, timeout: float = 5.0) -> bytes:
    """Exactly the next ``count`` frames of a subscription, however they are batched."""
    received = b""
    deadline = time.monotonic() + timeout
    while received.count(b"\n\n") < count:
        received += subscription.get(timeout=max(deadline - time.monotonic(), 0.0))
    assert received.count(b"\n\n") == count, received
    return received


def stored(client: redis.Redis, key: str = "wsgisse:news") -> list[tuple[str, dict[Any, Any]]]:
    """The entries of a stream as redis-py reads them, their ids as text."""
    entries: Any = client.xrange(key)
    return [(entry_id.decode(), fields) for entry_id, fields in entries]


def client_names(client: redis.Redis) -> list[str]:
    return [entry["name"] for entry in client.client_list()]


# -- stream ids and replies (pure) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1700000000000-0", (1700000000000, 0)),
        ("0-1", (0, 1)),
        ("18446744073709551615-18446744073709551615", (2**64 - 1, 2**64 - 1)),
        ("18446744073709551616-0", None),
        ("1700000000000", None),
        ("1-*", None),
        ("-1-2", None),
        ("1--2", None),
        ("\u0661-\u0662", None),  # Arabic-Indic digits: str.isdigit() says yes; Redis no.
        ("abc", None),
        ("", None),
    ],
)
def test_parse_id_reads_only_stream_ids(text: str, parsed: tuple[int, int] | None) -> None:
    assert parse_id(text) == parsed


def test_redact_url_hides_the_password() -> None:
    assert redact_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("rediss://user:s3cret@h/0?x=1") == "rediss://user:***@h/0?x=1"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


# -- importing ----------------------------------------------------------------------------------


def test_importing_wsgisse_imports_no_redis() -> None:
    code = "import sys, wsgisse, wsgisse.backends; assert 'redis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, env=python_env())


def test_without_the_redis_package_the_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "try:\n"
        "    import wsgisse.backends.redis\n"
        "except ImportError as exc:\n"
        "    print(exc.name, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=python_env(),
    )
    assert result.stdout.strip() == (
        "redis wsgisse.backends.redis needs the redis package: pip install wsgisse[redis]"
    )


def test_options_out_of_range_are_refused() -> None:
    for options in (
        {"maxlen": 0},
        {"max_age": 0},
        {"publish_retries": -1},
        {"retry_delay": -0.1},
        {"block_timeout": 0},
    ):
        with pytest.raises(ValueError, match=next(iter(options))):
            RedisBackend(**options)


# -- publishing and subscribing in one process --------------------------------------------------


def test_publish_stores_the_event_without_id_and_returns_the_stream_id(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url))
    sent = channel.publish({"a": 1}, event="update", retry=1000)
    assert sent.id is not None
    assert parse_id(sent.id) is not None
    [(entry_id, fields)] = stored(inspect)
    assert entry_id == sent.id
    assert fields == {b"body": b'event: update\nretry: 1000\ndata: {"a":1}\n\n'}


def test_a_process_that_only_publishes_starts_no_reader(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url))
    for n in range(3):
        channel.publish(n)
    assert reader_threads() == []
    assert "wsgisse-reader" not in client_names(inspect)
    assert inspect.xlen("wsgisse:news") == 3


def test_events_from_another_process_reach_subscribers_in_order(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    publisher = Channel("news", backend=make_backend(redis_server.url))
    channel = Channel("news", backend=make_backend(redis_server.url))
    with channel.subscribe() as subscription:
        ids = [publisher.publish(f"e{n}").id or "" for n in range(5)]
        assert take(subscription, 5) == b"".join(frame(f"e{n}", ids[n]) for n in range(5))
    assert len(reader_threads()) == 1


def test_channels_of_one_name_in_one_process_each_get_every_event(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url)
    first, second = Channel("news", backend=backend), Channel("news", history=10, backend=backend)
    other = Channel("other", backend=backend)
    with first.subscribe() as a, second.subscribe() as b, other.subscribe() as c:
        sent = first.publish("hello")
        assert a.get(timeout=5) == b.get(timeout=5) == frame("hello", sent.id or "")
        with pytest.raises(queue.Empty):
            c.get(timeout=0.3)
    assert len(reader_threads()) == 1


def test_an_audience_travels_with_the_event_to_every_process(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    publisher = Channel("news", backend=make_backend(redis_server.url))
    channel = Channel("news", backend=make_backend(redis_server.url))
    alice, bob, anyone = (channel.subscribe(user=user) for user in ("alice", "bob", None))
    first = publisher.publish("for everybody")
    private = publisher.publish("for alice and carol", audience=["carol", "alice"])
    last = publisher.publish("for everybody again")
    assert stored(inspect)[1][1][b"audience"] == b'["alice","carol"]'
    assert take(alice, 3) == b"".join(
        frame(str(sent.data), sent.id or "") for sent in (first, private, last)
    )
    for other in (bob, anyone):
        assert take(other, 2) == b"".join(
            frame(str(sent.data), sent.id or "") for sent in (first, last)
        )
        other.close()
    alice.close()
    # A fresh worker replays it from the stream to alice only.
    fresh = Channel("news", backend=make_backend(redis_server.url))
    with fresh.subscribe(first.id, user="alice") as replay:
        assert replay.get(timeout=5) == frame(str(private.data), private.id or "") + frame(
            str(last.data), last.id or ""
        )
    with fresh.subscribe(first.id, user="bob") as replay:
        assert replay.get(timeout=5) == frame(str(last.data), last.id or "")


def test_an_unreadable_audience_sends_the_event_to_nobody(
    redis_server: RedisServer,
    inspect: redis.Redis,
    make_backend: Callable[..., RedisBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url))
    with caplog.at_level(logging.WARNING, logger="wsgisse.redis"), channel.subscribe() as sub:
        inspect.xadd("wsgisse:news", {"body": b"data: secret\n\n", "audience": b"alice"})
        sent = channel.publish("public")
        assert sub.get(timeout=5) == frame("public", sent.id or "")
    assert "skipped 1 entries of 'wsgisse:news'" in caplog.text


def test_a_new_channel_is_seeded_from_the_stream_and_replays_exactly(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    publisher = Channel("news", backend=make_backend(redis_server.url))
    ids = [publisher.publish(f"e{n}").id or "" for n in range(10)]
    # A fresh worker: its channel has never seen these events, and resumes from Redis.
    channel = Channel("news", backend=make_backend(redis_server.url))
    with channel.subscribe(last_event_id=ids[6]) as subscription:
        assert subscription.get(timeout=5) == b"".join(frame(f"e{n}", ids[n]) for n in range(7, 10))
        assert channel.last_event_id == ids[9]
        live = publisher.publish("live")
        assert subscription.get(timeout=5) == frame("live", live.id or "")


def test_the_seed_is_bounded_by_the_channel_log(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    publisher = Channel("news", backend=make_backend(redis_server.url))
    ids = [publisher.publish(f"e{n}").id or "" for n in range(50)]
    channel = Channel("news", history=10, max_backlog=5, backend=make_backend(redis_server.url))
    assert channel.log_capacity == 10
    with channel.subscribe(last_event_id=ids[45]) as recent:
        assert recent.get(timeout=5) == b"".join(frame(f"e{n}", ids[n]) for n in range(46, 50))
    with channel.subscribe(last_event_id=ids[30]) as too_old:
        lost = too_old.get(timeout=5)
    assert lost.startswith(b"event: wsgisse-history-lost\n")
    assert f'"oldestId":"{ids[40]}"'.encode() in lost


def test_first_subscribers_arriving_together_are_not_sent_old_events(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    publisher = Channel("news", backend=make_backend(redis_server.url))
    for n in range(5):
        publisher.publish(f"old{n}")
    channel = Channel("news", backend=make_backend(redis_server.url))
    barrier = threading.Barrier(20)
    subscriptions: list[wsgisse.Subscription] = []

    def subscribe() -> None:
        barrier.wait(5)
        subscriptions.append(channel.subscribe())

    threads = [threading.Thread(target=subscribe) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(subscriptions) == 20
    new = publisher.publish("new")
    for subscription in subscriptions:
        assert subscription.get(timeout=5) == frame("new", new.id or "")
        subscription.close()


def test_resume_waits_for_the_reader_to_reach_the_last_event_id(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    publisher = Channel("news", backend=make_backend(redis_server.url))
    channel = Channel("news", backend=make_backend(redis_server.url))
    channel.subscribe().close()  # Attached: the reader follows the stream.
    first = publisher.publish("first").id or ""
    # The id a client got from another worker, which this worker's reader has not read
    # yet: here it is published 0.3 s after the client presents it.
    ahead = f"{int(first.split('-')[0]) + 1}-7"
    later = threading.Timer(0.3, lambda: publisher.publish("ahead", id=ahead))
    later.start()
    began = time.monotonic()
    try:
        with channel.subscribe(last_event_id=ahead) as subscription:
            waited = time.monotonic() - began
            after = publisher.publish("after")
            assert subscription.get(timeout=5) == frame("after", after.id or "")
    finally:
        later.join(5)
    assert 0.2 < waited < SYNC_TIMEOUT


def test_resume_from_an_id_the_reader_never_reaches_gives_up_in_bounded_time(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url))
    channel.publish("only")
    began = time.monotonic()
    with channel.subscribe(last_event_id="99999999999999-0") as subscription:
        waited = time.monotonic() - began
        assert subscription.get(timeout=1).startswith(b"event: wsgisse-history-lost\n")
    assert SYNC_TIMEOUT - 0.1 < waited < SYNC_TIMEOUT + 1.5
    began = time.monotonic()
    with channel.subscribe(last_event_id="not-a-stream-id") as subscription:
        assert time.monotonic() - began < 0.5  # No stream id: nothing to wait for.
        assert subscription.get(timeout=1).startswith(b"event: wsgisse-history-lost\n")


def test_explicit_ids_are_stream_ids_and_must_grow(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url))
    with channel.subscribe() as subscription:
        assert channel.publish("a", id="5-1").id == "5-1"
        assert channel.publish("b", id="7").id == "7-0"  # Redis completes the sequence.
        for refused in ("7-0", "6-9", "0-0", "abc"):
            with pytest.raises(InvalidEventError) as caught:
                channel.publish("x", id=refused)
            assert caught.value.field == "id"
            assert caught.value.value == refused
        assert take(subscription, 2) == frame("a", "5-1") + frame("b", "7-0")


def test_the_prefix_names_the_stream_key(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url, prefix="app1:sse:")
    assert backend.stream_key("news") == "app1:sse:news"
    Channel("news", backend=backend).publish("x")
    assert inspect.keys() == [b"app1:sse:news"]


def test_maxlen_caps_the_stream(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url, maxlen=10))
    for n in range(1000):
        channel.publish(n)
    # MAXLEN ~ trims whole nodes (stream-node-max-entries, 100 by default).
    assert 10 <= inspect.xlen("wsgisse:news") <= 110


def test_max_age_drops_old_entries(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url, max_age=0.3))
    for n in range(3):
        channel.publish(n)
    time.sleep(0.4)  # The behaviour under test is the age of the entries.
    newest = channel.publish("new")
    assert [entry_id for entry_id, _ in stored(inspect)] == [newest.id]


def test_a_given_client_is_used_and_left_open(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    backend = RedisBackend(client=client)
    try:
        channel = Channel("news", backend=backend)
        old = channel.publish("old")
        with channel.subscribe(last_event_id="0-1") as subscription:
            assert subscription.get(timeout=5).startswith(b"event: wsgisse-history-lost")
        with channel.subscribe(last_event_id=old.id) as subscription:
            new = channel.publish("new")
            assert subscription.get(timeout=5) == frame("new", new.id or "")
    finally:
        backend.close()
    assert client.ping()
    client.close()


def test_a_channel_keeping_more_than_the_stream_is_warned_about(
    redis_server: RedisServer,
    make_backend: Callable[..., RedisBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = Channel("news", history=500, backend=make_backend(redis_server.url, maxlen=100))
    with caplog.at_level(logging.WARNING, logger="wsgisse.redis"):
        channel.subscribe().close()
    assert "keeps 500 events but its stream 'wsgisse:news' only about 100" in caplog.text


def test_entries_not_written_by_wsgisse_are_stepped_over(
    redis_server: RedisServer,
    inspect: redis.Redis,
    make_backend: Callable[..., RedisBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url))
    with caplog.at_level(logging.WARNING, logger="wsgisse.redis"), channel.subscribe() as sub:
        inspect.xadd("wsgisse:news", {"other": "thing"})
        sent = channel.publish("mine")
        assert sub.get(timeout=5) == frame("mine", sent.id or "")
    assert "skipped 1 entries of 'wsgisse:news'" in caplog.text


# -- the reader's lifetime ----------------------------------------------------------------------


def reader_blocked(inspect: redis.Redis) -> bool:
    """Whether Redis says the reader waits in a blocking XREAD (flag ``b``)."""
    return any(
        client.get("name") == "wsgisse-reader" and "b" in str(client.get("flags", ""))
        for client in inspect.client_list()
    )


def test_a_new_channel_is_followed_at_once_while_the_reader_blocks(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url, block_timeout=10.0)
    Channel("first", backend=backend).subscribe().close()
    wait_until(lambda: reader_blocked(inspect), 5.0, "the reader in its 10 s XREAD")
    began = time.monotonic()
    second = Channel("second", backend=backend)
    with second.subscribe() as subscription:
        sent = second.publish("x")
        assert subscription.get(timeout=5) == frame("x", sent.id or "")
    assert time.monotonic() - began < 1.0  # CLIENT UNBLOCK, not the 10 s block.


def test_closing_the_last_channel_stops_the_reader_and_its_connection(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url, block_timeout=10.0)
    first, second = Channel("a", backend=backend), Channel("b", backend=backend)
    first.subscribe()
    second.subscribe()
    assert len(reader_threads()) == 1
    assert client_names(inspect).count("wsgisse-reader") == 1
    first.close()
    # The reader goes on with the other channel: it is back in its XREAD.
    wait_until(lambda: reader_blocked(inspect), 5.0, "the reader in its XREAD again")
    assert len(reader_threads()) == 1
    began = time.monotonic()
    second.close()  # Returns once the reader has ended: unblocked from its 10 s XREAD.
    assert time.monotonic() - began < 1.0
    wait_until(lambda: not reader_threads(), 0.5, "the reader thread gone")
    wait_until(lambda: "wsgisse-reader" not in client_names(inspect), 2.0, "reader disconnected")
    # A channel attached later starts a reader again.
    third = Channel("c", backend=backend)
    with third.subscribe() as subscription:
        sent = third.publish("again")
        assert subscription.get(timeout=5) == frame("again", sent.id or "")


GEVENT_READER = """
from gevent import monkey

monkey.patch_all()

import gc
import sys
import threading

import gevent

import wsgisse
from wsgisse.backends.redis import RedisBackend


def readers():
    return [g for g in gc.get_objects() if isinstance(g, gevent.Greenlet) and g.name == NAME]


NAME = "wsgisse redis reader"
gevent.get_hub()  # As in a gevent server: the hub runs before the first request.
backend = RedisBackend(sys.argv[1], block_timeout=10.0)
channel = wsgisse.Channel("news", backend=backend)
subscription = channel.subscribe()
sent = channel.publish("hi")
assert subscription.get(timeout=5) == f"data: hi\\nid: {sent.id}\\n\\n".encode()
assert [t.name for t in threading.enumerate()] == ["MainThread"], threading.enumerate()
[reader] = readers()
channel.close()  # Kills the reader where it waits (in its 10 s XREAD), and waits for it.
assert reader.dead, reader
backend.close()
print("ok")
"""


def test_under_gevent_the_reader_is_a_greenlet_killed_by_the_last_detach(
    redis_server: RedisServer,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_READER, redis_server.url],
        capture_output=True,
        text=True,
        timeout=30,
        env=python_env(),
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_close_ends_the_reader_and_refuses_publishes(redis_server: RedisServer) -> None:
    backend = RedisBackend(redis_server.url)
    channel = Channel("news", backend=backend)
    channel.subscribe()
    backend.close()
    assert reader_threads() == []
    backend.close()  # Idempotent.
    with pytest.raises(BackendUnavailableError, match="closed"):
        channel.publish("late")


# -- faults ----------------------------------------------------------------------------------------


def test_publishing_to_a_stopped_redis_fails_fast_and_loudly(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    channel = Channel("news", backend=make_backend(redis_server.url))
    channel.publish("up")
    redis_server.stop()
    began = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="Redis is unreachable") as caught:
        channel.publish("down")
    assert time.monotonic() - began < 1.0
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value.__cause__, redis.ConnectionError)


def test_publish_retries_are_bounded(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    redis_server.stop()
    backend = make_backend(redis_server.url, publish_retries=2, retry_delay=0.2)
    began = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="3 attempts"):
        Channel("news", backend=backend).publish("x")
    assert 0.35 < time.monotonic() - began < 2.0


def test_a_publish_retried_while_redis_restarts_succeeds(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    redis_server.stop()
    backend = make_backend(redis_server.url, publish_retries=50, retry_delay=0.1)
    restart = threading.Timer(0.3, redis_server.start)
    restart.start()
    try:
        sent = Channel("news", backend=backend).publish("x")
    finally:
        restart.join(30)
    assert sent.id is not None


def test_the_reader_resumes_after_a_redis_restart_without_loss_or_duplicates(
    redis_server: RedisServer,
    make_backend: Callable[..., RedisBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = Channel("news", backend=make_backend(redis_server.url))
    channel = Channel("news", backend=make_backend(redis_server.url))
    with caplog.at_level(logging.INFO, logger="wsgisse.redis"), channel.subscribe() as sub:
        sent = [publisher.publish("a"), publisher.publish("b")]
        received = take(sub, 2)
        redis_server.stop(signal.SIGKILL)
        with pytest.raises(BackendUnavailableError):
            publisher.publish("while down")
        # Heartbeats would flow meanwhile: the subscription is open and just quiet.
        with pytest.raises(queue.Empty):
            sub.get(timeout=0.5)
        redis_server.start()  # Empty: this Redis keeps nothing on disk.
        sent += [publisher.publish("c"), publisher.publish("d")]
        received += take(sub, 2, timeout=10)
        with pytest.raises(queue.Empty):  # Nothing twice.
            sub.get(timeout=0.3)
    assert received == b"".join(frame(str(e.data), e.id or "") for e in sent)
    assert "the reader cannot read from Redis" in caplog.text
    assert "Redis answers again" in caplog.text


def test_a_channel_attached_while_redis_is_down_gets_only_new_events_later(
    redis_server: RedisServer,
    inspect: redis.Redis,
    make_backend: Callable[..., RedisBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The stream key holds a string: the reader's seed fails as it would with Redis down,
    # while the test keeps a connection to set things right.
    inspect.set("wsgisse:news", "not a stream")
    channel = Channel("news", backend=make_backend(redis_server.url))
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="wsgisse.redis"):
        subscription = channel.subscribe()
    assert SYNC_TIMEOUT - 0.1 < time.monotonic() - began < SYNC_TIMEOUT + 1.5
    assert "could not read the history of 'wsgisse:news'" in caplog.text
    with subscription:
        # In one transaction: the stream appears holding an event from before the
        # subscriber came (an explicit id in 1970), which must not be sent as new...
        with inspect.pipeline(transaction=True) as pipe:
            pipe.delete("wsgisse:news")
            pipe.xadd("wsgisse:news", {"body": b"data: old\n\n"}, id="1-1")
            pipe.execute()
        # ...and then an event published after it came, which must.
        new = Channel("news", backend=make_backend(redis_server.url)).publish("new")
        assert subscription.get(timeout=10) == frame("new", new.id or "")


def test_a_subscriber_arriving_while_redis_is_down_waits_boundedly_then_gets_events(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    redis_server.stop()
    channel = Channel("news", backend=make_backend(redis_server.url))
    began = time.monotonic()
    with channel.subscribe() as subscription:  # A worker's first client, Redis away.
        assert SYNC_TIMEOUT - 0.1 < time.monotonic() - began < SYNC_TIMEOUT + 1.5
        redis_server.start()
        sent = Channel("news", backend=make_backend(redis_server.url)).publish("back")
        assert subscription.get(timeout=10) == frame("back", sent.id or "")


def test_a_password_in_the_url_is_used_and_never_shown(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    inspect.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@{HOST}:{redis_server.port}/0"
    backend = make_backend(url)
    channel = Channel("news", backend=backend)
    with channel.subscribe() as subscription:
        sent = channel.publish("secret")
        assert subscription.get(timeout=5) == frame("secret", sent.id or "")
    assert "s3cret" not in repr(backend)
    wrong = make_backend(f"redis://:wrong@{HOST}:{redis_server.port}/0")
    with pytest.raises(BackendUnavailableError):
        Channel("news", backend=wrong).publish("x")


def test_an_acl_user_with_the_documented_commands_is_enough(
    redis_server: RedisServer, inspect: redis.Redis, make_backend: Callable[..., RedisBackend]
) -> None:
    # docs/redis.rst lists these; CLIENT UNBLOCK is left out on purpose.
    commands = ["+xadd", "+xtrim", "+xread", "+xrevrange", "+client|id", "+client|setname"]
    inspect.acl_setuser(
        "sse", enabled=True, passwords=["+pw"], keys=["wsgisse:*"], commands=[*commands, "+hello"]
    )
    backend = make_backend(f"redis://sse:pw@{HOST}:{redis_server.port}/0", max_age=60)
    news = Channel("news", backend=backend)
    old = news.publish("old")
    with news.subscribe(last_event_id=old.id) as subscription:
        new = news.publish("new")
        assert subscription.get(timeout=5) == frame("new", new.id or "")
        began = time.monotonic()
        Channel("other", backend=backend).subscribe().close()
        # CLIENT UNBLOCK refused: the reader's XREAD returned by itself.
        assert 0.5 < time.monotonic() - began < backend.block_timeout + 1.0
    assert [entry["object"] for entry in inspect.acl_log()] == ["client|unblock"]


def _tls_ready(ca_file: Path) -> Callable[[ServerProcess], bool]:
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


def test_a_rediss_url_speaks_tls(
    tmp_path: Path, start_server: StartServer, make_backend: Callable[..., RedisBackend]
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subject = ["-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"]
    subprocess.run(
        [find_program("openssl"), *request, "-keyout", key, "-out", cert, *subject],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    options = {
        "port": 0,  # TLS only.
        "tls-port": port,
        "bind": HOST,
        "tls-cert-file": cert,
        "tls-key-file": key,
        "tls-ca-cert-file": cert,
        "tls-auth-clients": "no",
        "save": "",
        "appendonly": "no",
        "dir": tmp_path,
    }
    argv = [find_program("redis-server")]
    argv += [arg for name, value in options.items() for arg in (f"--{name}", str(value))]
    server = start_server(ServerProcess(argv, port=port, name="redis-tls", ready=_tls_ready(cert)))
    backend = make_backend(f"rediss://{HOST}:{server.port}/0?ssl_ca_certs={cert}")
    channel = Channel("news", backend=backend)
    with channel.subscribe() as subscription:
        sent = channel.publish("over tls")
        assert subscription.get(timeout=5) == frame("over tls", sent.id or "")


# -- behind gunicorn -w 3 -k gevent ------------------------------------------------------------


def serve(start_server: StartServer, redis_url: str) -> ServerProcess:
    """gunicorn -w 3 -k gevent serving this file's app, once all three workers answer."""
    return serve_on_three_workers(start_server, APP, redis_url)


def worker_pids(server: ServerProcess) -> set[int]:
    return {proc.pid for proc in server.group_members() if proc.pid != server.pid}


def open_streams(
    open_sse: Callable[..., EventStream], url: str, count: int, *, per_worker: int = 0
) -> list[EventStream]:
    """``count`` streams, and more if needed until each worker serves ``per_worker``."""
    streams = [open_sse(url + "/events") for _ in range(count)]
    spread = collections.Counter(stream.headers["X-Worker-Pid"] for stream in streams)
    while len(spread) < 3 or min(spread.values()) < per_worker:
        assert len(streams) < count + 300, f"the workers got {spread}"
        streams.append(open_sse(url + "/events"))
        spread[streams[-1].headers["X-Worker-Pid"]] += 1
    assert {stream.status for stream in streams} == {200}
    return streams


def numbers(events: list[MessageEvent]) -> list[int]:
    return [json.loads(event.data)["n"] for event in events]


def run_publisher(redis_url: str, count: int, **options: float) -> list[dict[str, Any]]:
    """Publish from a process of its own (tests/live/redis_app.py); its JSON lines."""
    flags = [f"--{name}={value}" for name, value in options.items()]
    result = subprocess.run(
        [sys.executable, str(PUBLISHER), redis_url, str(count), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.slow
def test_300_clients_on_3_workers_get_an_event_published_by_a_script(
    redis_server: RedisServer,
    start_server: StartServer,
    open_sse: Callable[..., EventStream],
) -> None:
    server = serve(start_server, redis_server.url)
    streams = open_streams(open_sse, server.url, 300)
    spread = collections.Counter(stream.headers["X-Worker-Pid"] for stream in streams)
    assert {int(pid) for pid in spread} == worker_pids(server)
    published = run_publisher(redis_server.url, 5)
    ids = [line["id"] for line in published]
    for stream in streams:
        events = stream.events(5, timeout=10)
        assert numbers(events) == [0, 1, 2, 3, 4]
        assert [event.last_event_id for event in events] == ids


@pytest.mark.slow
def test_a_client_back_on_another_worker_gets_exactly_the_50_it_missed(
    redis_server: RedisServer,
    start_server: StartServer,
    open_sse: Callable[..., EventStream],
    make_backend: Callable[..., RedisBackend],
) -> None:
    server = serve(start_server, redis_server.url)
    # Clients on every worker, so each worker's reader is following the stream.
    others = open_streams(open_sse, server.url, 30, per_worker=3)
    publisher = Channel("news", backend=make_backend(redis_server.url))
    client = open_sse(server.url + "/events")
    first_worker = client.headers["X-Worker-Pid"]
    publisher.publish({"n": -1})
    seen = client.next_event(timeout=10)
    client.close()
    missed = [publisher.publish({"n": n}).id for n in range(50)]
    for _ in range(50):
        back = open_sse(server.url + "/events", last_event_id=seen.last_event_id)
        if back.headers["X-Worker-Pid"] != first_worker:
            break
        back.close()
    else:
        pytest.fail(f"50 reconnections all landed on worker {first_worker}")
    replayed = back.events(50, timeout=10)
    assert numbers(replayed) == list(range(50))
    assert [event.last_event_id for event in replayed] == missed
    live = publisher.publish({"n": 50})
    after = back.next_event(timeout=10)
    assert (after.type, after.last_event_id) == ("message", live.id)
    for stream in others:  # They got all 52, once each.
        assert numbers(stream.events(52, timeout=10)) == list(range(-1, 51))


@pytest.mark.slow
def test_redis_killed_and_restarted_while_publishing_loses_and_repeats_nothing(
    durable_redis: RedisServer,
    start_server: StartServer,
    open_sse: Callable[..., EventStream],
    tmp_path: Path,
) -> None:
    server = serve(start_server, durable_redis.url)
    streams = open_streams(open_sse, server.url, 30, per_worker=5)
    workers = worker_pids(server)
    log_path = tmp_path / "published.jsonl"
    with log_path.open("w") as log:
        publisher = subprocess.Popen(
            [sys.executable, str(PUBLISHER), durable_redis.url, "400", "--interval=0.01"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=python_env(),
        )
    try:

        def published() -> int:
            return len(log_path.read_text().splitlines())

        wait_until(lambda: published() >= 100, 20.0, "100 events published")
        durable_redis.stop(signal.SIGKILL)
        time.sleep(1.0)  # Publishing goes on, and fails, for a second.
        durable_redis.start()
        assert publisher.wait(60) == 0
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait(10)
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    accepted = {line["n"] for line in lines if "id" in line}
    failed = {line["n"] for line in lines if "error" in line}
    assert len(lines) == 400
    assert failed, "no publish was made while Redis was down"
    assert {line["error"] for line in lines if "error" in line} == {"BackendUnavailableError"}
    assert max(line["ms"] for line in lines) < 3000  # Failed fast; never hung.
    for stream in streams:
        events: list[MessageEvent] = []
        while not accepted <= set(numbers(events)):
            events.append(stream.next_event(timeout=15))
        got = numbers(events)
        # Once each, in order; anything beyond what was acknowledged is a publish whose
        # reply the kill cut off, after Redis had stored it.
        assert got == sorted(set(got))
        assert set(got) - accepted <= failed
    assert worker_pids(server) == workers
    assert server.alive()


@pytest.mark.slow
def test_1000_subscribers_on_3_workers_hold_one_redis_connection_each(
    redis_server: RedisServer,
    start_server: StartServer,
    open_sse: Callable[..., EventStream],
    inspect: redis.Redis,
) -> None:
    server = serve(start_server, redis_server.url)
    streams = open_streams(open_sse, server.url, 1000)
    spread = collections.Counter(stream.headers["X-Worker-Pid"] for stream in streams)
    assert len(spread) == 3
    published = run_publisher(redis_server.url, 1)
    for stream in streams:
        assert stream.next_event(timeout=10).last_event_id == published[0]["id"]
    # Which Redis connections each worker holds: its sockets to Redis' port, matched
    # against CLIENT LIST (and the script's connections are gone with it).
    clients = {int(c["addr"].rsplit(":", 1)[1]): c["name"] for c in inspect.client_list()}
    per_worker = {}
    for pid in worker_pids(server):
        ports = {
            conn.laddr.port
            for conn in psutil.Process(pid).net_connections(kind="tcp")
            if getattr(conn.raddr, "port", None) == redis_server.port  # () when unconnected
        }
        per_worker[pid] = sorted(clients[port] for port in ports if port in clients)
    assert sorted(per_worker.values()) == [["wsgisse-reader"]] * 3, per_worker
    assert len(clients) == 3 + 1  # The three readers, and this test's own client.


def test_the_local_log_of_a_redis_channel_is_bounded_in_bytes_too(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url)
    channel = Channel("big", history=1000, history_bytes=1_000_000, backend=backend)
    with channel.subscribe() as reader:
        sent = [channel.publish("x" * 100_000) for _ in range(30)]
        received: list[bytes] = []
        while (
            sum(chunk.count(b"\ndata: ") + chunk.startswith(b"data: ") for chunk in received) < 30
        ):
            received.append(reader.get(timeout=5))
    log = channel._fanout.log  # noqa: SLF001
    assert log.held_bytes <= 1_000_000
    held = [event for event in sent if event.id in log]
    assert 5 <= len(held) <= 10
    # A client back from another worker, just outside the window, is told it was lost.
    outside = sent[sent.index(held[0]) - 1]
    with channel.subscribe(last_event_id=outside.id) as late:
        assert late.get(timeout=5).startswith(b"event: wsgisse-history-lost")
    with channel.subscribe(last_event_id=held[0].id) as exact:
        assert exact.get(timeout=5).count(b"\nid: ") == len(held) - 1
