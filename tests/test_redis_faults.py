"""A hung Redis (redis-server under SIGSTOP), ambiguous publishes and idempotent retries.

SIGSTOP freezes redis-server with its sockets open: connections are accepted by the
kernel, commands are written into its buffers, and nothing answers until SIGCONT, when
it runs what it received. That is a Redis stuck in a long command, a swapping host or a
network black hole, the faults a socket timeout is for.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis
from _servers import EventStream, RedisServer, ServerProcess, gunicorn_gevent
from conftest import serve_on_three_workers

import wsgisse
from wsgisse import BackendUnavailableError, Channel
from wsgisse.backends.redis import PUBLISH_TIMEOUT, RedisBackend
from wsgisse.testing import wait_until

if TYPE_CHECKING:
    from conftest import StartServer

pytestmark = pytest.mark.redis

READER = "wsgisse redis reader"
APP = "tests.live.redis_app:app"
# The stated bound on a publish to a hung Redis is PUBLISH_TIMEOUT (2 s); asserted with
# room for a loaded machine.
ALLOWANCE = 3.0


@contextlib.contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """redis-server stopped by SIGSTOP for the block, and always continued after it."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def entries(url: str, key: str = "wsgisse:news") -> list[Any]:
    with redis.Redis.from_url(url) as client:
        return list(client.xrange(key))


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    began = time.monotonic()
    try:
        outcome = call()
    except BackendUnavailableError as exc:
        outcome = exc
    return time.monotonic() - began, outcome


# -- in process: ambiguous publishes and publish_once ----------------------------------------


def test_a_publish_to_a_hung_redis_fails_in_bounded_time_yet_may_be_stored(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    news = Channel("news", backend=make_backend(redis_server.url))
    news.publish("warm")  # The connection is open: the XADD reaches Redis' buffer.
    with frozen(redis_server):
        took, outcome = timed(lambda: news.publish("ambiguous"))
    assert isinstance(outcome, BackendUnavailableError), outcome
    assert "did not answer in time" in str(outcome)
    assert took < PUBLISH_TIMEOUT + ALLOWANCE
    # Redis ran the XADD it had received: the outcome of a timed-out publish is unknown.
    wait_until(lambda: len(entries(redis_server.url)) == 2, 5.0, "the XADD run after SIGCONT")


def test_publish_once_stores_one_event_per_key(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url, max_age=60)
    news = Channel("news", backend=backend)
    with news.subscribe(user="ann") as subscription:
        first = backend.publish_once(news, "order-42", {"n": 1}, event="shipped", audience=["ann"])
        again = backend.publish_once(news, "order-42", {"n": 1}, event="shipped", audience=["ann"])
        other = backend.publish_once(news, "order-43", {"n": 2})
        assert first.id == again.id != other.id
        assert (first.event, first.data) == ("shipped", '{"n":1}')
        received = b""
        while received.count(b"\n\n") < 2:
            received += subscription.get(timeout=5)
        assert received == first.encode() + other.encode()
    assert len(entries(redis_server.url)) == 2
    with pytest.raises(wsgisse.InvalidEventError):
        backend.publish_once(news, "order-44", None)


def test_a_retry_with_the_key_after_a_timeout_never_stores_twice(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url)
    news = Channel("news", backend=backend)
    news.publish("warm")
    with frozen(redis_server):
        took, first = timed(lambda: backend.publish_once(news, "k1", "once"))
        # A second attempt while Redis is still stuck: both scripts reach its buffers.
        _, second = timed(lambda: backend.publish_once(news, "k1", "once"))
    assert isinstance(first, BackendUnavailableError), first
    assert isinstance(second, BackendUnavailableError), second
    assert took < PUBLISH_TIMEOUT + ALLOWANCE
    retried = backend.publish_once(news, "k1", "once")  # Redis answers again.
    stored = entries(redis_server.url)
    assert len(stored) == 2  # "warm" and one "once", whichever attempt ran first.
    assert retried.id == stored[1][0].decode()
    assert backend.publish_once(news, "k1", "once").id == retried.id


# -- behind gunicorn -w 3 -k gevent -------------------------------------------------------------


def serve(start_server: StartServer, redis_url: str) -> ServerProcess:
    """gunicorn -w 3 -k gevent serving this file's app, once all three workers answer."""
    return serve_on_three_workers(start_server, APP, redis_url)


def get_json(url: str, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def numbers(events: list[wsgisse.MessageEvent]) -> list[int]:
    return [json.loads(event.data)["n"] for event in events]


@pytest.mark.slow
def test_a_hung_redis_never_hangs_the_site(
    redis_server: RedisServer,
    start_server: StartServer,
    open_sse: Callable[..., EventStream],
) -> None:
    server = serve(start_server, redis_server.url)
    streams: list[EventStream] = []
    spread: collections.Counter[str] = collections.Counter()
    while len(spread) < 3 or min(spread.values()) < 3:
        assert len(streams) < 200, spread
        streams.append(open_sse(server.url + "/events"))
        spread[streams[-1].headers["X-Worker-Pid"]] += 1
    accepted = []
    for n in range(3):
        status, answer = get_json(f"{server.url}/publish?n={n}")
        assert status == 200, answer
        accepted.append((n, answer["id"]))
    for stream in streams:
        assert numbers(stream.events(3, timeout=10)) == [0, 1, 2]
    publishes: list[tuple[int, dict[str, Any]]] = []
    pid_answers: list[float] = []
    with frozen(redis_server):
        stopped_at = time.monotonic()
        # Publishes from the web workers, all at once, while other requests go on.
        threads = [
            threading.Thread(
                target=lambda n=n: publishes.append(get_json(f"{server.url}/publish?n={n}"))
            )
            for n in range(100, 106)
        ]
        for thread in threads:
            thread.start()
        while time.monotonic() - stopped_at < 4.0:
            began = time.monotonic()
            with urllib.request.urlopen(server.url + "/pid", timeout=10) as response:
                response.read()
            pid_answers.append(time.monotonic() - began)
        for thread in threads:
            thread.join(timeout=30)
        # Every subscriber is still connected, and heard a heartbeat meanwhile.
        for stream in streams:
            item = stream.next_item(timeout=5)
            assert isinstance(item, wsgisse.Comment), item
    print(
        f"hung Redis: publishes answered 503 in {sorted(a['ms'] for _, a in publishes)} ms; "
        f"{len(pid_answers)} other requests, slowest {max(pid_answers) * 1000:.0f} ms"
    )
    assert [status for status, _ in publishes] == [503] * 6
    assert all(answer["ms"] < (PUBLISH_TIMEOUT + ALLOWANCE) * 1000 for _, answer in publishes)
    assert max(pid_answers) < 1.0 + ALLOWANCE
    for n in range(3, 6):
        status, answer = get_json(f"{server.url}/publish?n={n}")
        assert status == 200, answer
        accepted.append((n, answer["id"]))
    for stream in streams:
        got = []
        while not got or numbers(got)[-1] != 5:
            got.append(stream.next_event(timeout=15))
        ids = [event.last_event_id for event in got]
        assert len(ids) == len(set(ids))  # Nothing twice.
        kept = [(n, i) for n, i in zip(numbers(got), ids, strict=True) if n < 100]
        assert kept == accepted[3:]  # Every accepted event once, in order.
        # The ambiguous ones (Redis ran them after SIGCONT) came before, at most once.
        assert set(numbers(got)) - {3, 4, 5} <= set(range(100, 106))


# -- Redis restarted empty -----------------------------------------------------------------------

# Live clients get new events within the reader's longest backoff (2 s) of Redis being
# back, plus a connection; asserted with room for a loaded machine.
RESTART_BOUND = 2.5


@pytest.mark.slow
def test_redis_restarted_empty_readers_go_on_and_old_ids_get_history_lost(
    redis_server: RedisServer,
    start_server: StartServer,
    open_sse: Callable[..., EventStream],
) -> None:
    server = serve(start_server, redis_server.url)
    streams: list[EventStream] = []
    spread: collections.Counter[str] = collections.Counter()
    while len(spread) < 3 or min(spread.values()) < 2:
        assert len(streams) < 200, spread
        streams.append(open_sse(server.url + "/events"))
        spread[streams[-1].headers["X-Worker-Pid"]] += 1
    before = [get_json(f"{server.url}/publish?n={n}")[1]["id"] for n in range(3)]
    for stream in streams:
        assert [e.last_event_id for e in stream.events(3, timeout=10)] == before
    redis_server.restart()  # No persistence: it comes back empty.
    back_at = time.monotonic()
    assert entries(redis_server.url) == []
    status, answer = get_json(f"{server.url}/publish?n=3")
    assert status == 200, answer
    arrived = []
    for stream in streams:
        event = stream.next_event(timeout=15)
        arrived.append(time.monotonic() - back_at)
        assert (numbers([event]), event.last_event_id) == ([3], answer["id"])
    print(f"Redis restarted empty: new events on every stream within {max(arrived):.2f} s")
    assert max(arrived) < RESTART_BOUND + ALLOWANCE
    # A worker that ran through the restart still holds the old events: exact resume.
    resumed = open_sse(server.url + "/events", last_event_id=before[0])
    got = resumed.events(3, timeout=10)
    assert [e.last_event_id for e in got] == [*before[1:], answer["id"]]
    # A worker started after the loss knows nothing older: history-lost, then live.
    fresh = start_server(
        gunicorn_gevent(APP, workers=1, env={"WSGISSE_TEST_REDIS_URL": redis_server.url})
    )
    wait_until(lambda: get_json(fresh.url + "/pid")[0] == 200, 20.0, "the new server")
    began = time.monotonic()
    late = open_sse(fresh.url + "/events", last_event_id=before[1])
    notice = late.next_event(timeout=10)
    took = time.monotonic() - began
    assert notice.type == wsgisse.HISTORY_LOST_EVENT
    assert json.loads(notice.data)["lastEventId"] == before[1]
    print(f"an id from before the restart: history-lost after {took:.2f} s")
    assert took < 2.0 + ALLOWANCE  # SYNC_TIMEOUT: waiting for an id nobody will read.
    status, answer = get_json(f"{server.url}/publish?n=4")
    assert numbers([late.next_event(timeout=10)]) == [4]
