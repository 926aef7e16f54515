"""Wake-ups across threads and greenlets, in a process gevent has NOT monkey-patched.

(The patched case runs in real gevent servers: see test_servers.py.)
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import gevent
import pytest

from wsgisse import Channel, EventStreamParser, MessageEvent, UnsafeConcurrencyError
from wsgisse._sync import Handoff, make_waiter


@pytest.fixture
def hub() -> Iterator[object]:
    hub = gevent.get_hub()
    yield hub
    hub.destroy(destroy_loop=False)


def datas(chunk: bytes) -> list[str]:
    return [e.data for e in EventStreamParser().feed(chunk) if isinstance(e, MessageEvent)]


def test_a_native_thread_wakes_greenlets_parked_on_a_hub(hub: object) -> None:
    channel = Channel(history=1000)
    received: dict[int, list[str]] = {}

    def subscriber(n: int) -> None:
        subscription = channel.subscribe()
        got: list[str] = []
        while len(got) < 50:
            got += datas(subscription.get(timeout=10))
        received[n] = got
        subscription.close()

    greenlets = [gevent.spawn(subscriber, n) for n in range(50)]
    while channel.subscriber_count < 50:
        gevent.sleep(0.001)

    def publish() -> None:
        for n in range(50):
            channel.publish(n)

    thread = threading.Thread(target=publish)
    thread.start()
    gevent.joinall(greenlets, timeout=20, raise_error=True)
    thread.join(5)
    assert len(received) == 50
    assert all(got == [str(n) for n in range(50)] for got in received.values())
    assert channel.subscriber_count == 0


def test_a_greenlet_blocked_on_a_subscription_leaves_the_hub_free(hub: object) -> None:
    channel = Channel()
    subscription = channel.subscribe()
    waiting = gevent.spawn(subscription.get, True, 10)
    ticks: list[int] = []

    def ticker() -> None:
        # Runs only while the hub is free: a native wait in `waiting` would starve it.
        while len(ticks) < 5:
            gevent.sleep(0.001)
            ticks.append(len(channel._fanout.parked))  # noqa: SLF001 - the wait under test

    gevent.joinall([gevent.spawn(ticker)], timeout=5, raise_error=True)
    assert ticks == [1] * 5  # the subscriber stayed parked all the while
    assert not waiting.ready()
    channel.publish("now")
    assert datas(waiting.get(timeout=5)) == ["now"]


def test_waiting_inside_the_hub_itself_is_refused_with_the_fix(hub: object) -> None:
    errors: list[BaseException] = []

    def in_hub() -> None:
        try:
            make_waiter()
        except UnsafeConcurrencyError as refused:
            errors.append(refused)

    gevent.get_hub().loop.run_callback(in_hub)
    gevent.sleep(0.01)
    assert len(errors) == 1
    assert "gevent.spawn" in str(errors[0])


def test_handoff_paces_a_fast_producer_to_the_consumer() -> None:
    handoff = Handoff(limit=10)
    produced: list[int] = []

    def producer() -> None:
        for n in range(100):
            handoff.put(b"x" * 5)
            produced.append(n)
        handoff.finish()

    thread = threading.Thread(target=producer)
    thread.start()
    total = 0
    while True:
        try:
            chunk = handoff.get(timeout=5)
        except EOFError:
            break
        assert len(chunk) <= 15  # at most the limit plus the one chunk that crossed it
        total += len(chunk)
    thread.join(5)
    assert total == 500
    assert len(produced) == 100


def test_a_patched_process_without_a_hub_yet_waits_cooperatively() -> None:
    """Subscribing before any gevent call must not block the (future) hub natively."""
    code = """
from gevent import monkey; monkey.patch_all()
import gevent, wsgisse
channel = wsgisse.Channel()
subscription = channel.subscribe()          # no hub exists yet in this thread
publisher = gevent.spawn_later(0.05, channel.publish, "woken")
print(subscription.get(timeout=5).decode().split()[1])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stdout.strip() == "woken", result.stderr[-2000:]


def test_a_native_thread_of_a_patched_process_sleeps_without_making_a_hub() -> None:
    """``shutdown`` waits in a native thread: a hub made there could race the exit."""
    code = """
from gevent import monkey; monkey.patch_all()
import gevent._hub_local as hub_local
from wsgisse._sync import cooperative_sleep, spawn_native_thread, unpatched
done = unpatched("threading", "Event")()
seen = []
def work():
    cooperative_sleep()(0.01)
    seen.append(hub_local.get_hub_if_exists() is None)
    done.set()
spawn_native_thread(work, name="sleeper")
done.wait(10)
print(seen)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stdout.strip() == "[True]", result.stderr[-2000:]
