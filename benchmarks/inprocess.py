"""In-process delivery costs: events for one user, a channel per user, idle channels.

    python -m benchmarks.inprocess            # about a minute; writes results/inprocess.json

What the socket benchmarks cannot isolate, measured inside one gevent process (monkey-
patched, as under gunicorn -k gevent): subscribers are greenlets waiting in
``Subscription.get`` (the ordinary path: no sockets), the publisher is a greenlet, and
CPU is the process' own (``time.process_time``) from the first publish until every
delivery has been taken. Scenarios:

``single``        one channel, one subscriber: the cost of one delivery, the yardstick
``targeted``      one channel, N subscribers of N users, each event for one user
``per-user``      N channels of one subscriber each, each event on one channel
``broadcast``     one channel, N subscribers, each event for everybody
``broadcast-mix`` the same while events for one user are held in the log
``idle-channels`` memory per channel with no subscriber and no event (tracemalloc)

Ratios are printed against ``single``: the issue's goal is ``targeted`` at most 1.5x.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import gevent

import wsgisse

RESULTS = Path(__file__).resolve().parent / "results"
USERS = 2000
EVENTS = 400


def _readers(
    subscriptions: list[wsgisse.Subscription], expected: list[int]
) -> list[gevent.Greenlet]:
    """One greenlet per subscription, counting the events it takes until told to stop."""
    counts = expected

    def read(index: int, subscription: wsgisse.Subscription) -> None:
        while True:
            try:
                chunk = subscription.get(timeout=30)
            except wsgisse.SubscriptionClosedError:
                return
            counts[index] += chunk.count(b"\ndata: ") + chunk.startswith(b"data: ")

    return [gevent.spawn(read, n, s) for n, s in enumerate(subscriptions)]


def _measure(
    subscriptions: list[wsgisse.Subscription],
    publish: Callable[[int], None],
    deliveries: int,
) -> dict[str, float]:
    counts = [0] * len(subscriptions)
    readers = _readers(subscriptions, counts)
    gevent.sleep(0.2)  # every reader parked
    base = sum(counts)
    started_cpu, started = time.process_time(), time.monotonic()
    for n in range(EVENTS):
        publish(n)
        gevent.sleep(0)  # one publish at a time, as from request handlers: no batching
    deadline = time.monotonic() + 60
    while sum(counts) - base < deliveries and time.monotonic() < deadline:
        gevent.sleep(0.001)
    cpu = time.process_time() - started_cpu
    wall = time.monotonic() - started
    delivered = sum(counts) - base
    for subscription in subscriptions:
        subscription.close()
    gevent.joinall(readers, timeout=10)
    return {
        "cpu_us_per_event": round(cpu / EVENTS * 1e6, 1),
        "cpu_us_per_delivery": round(cpu / max(delivered, 1) * 1e6, 2),
        "delivered": delivered,
        "expected": deliveries,
        "wall_s": round(wall, 3),
    }


def single() -> dict[str, float]:
    channel = wsgisse.Channel()
    subscriptions = [channel.subscribe()]
    return _measure(subscriptions, channel.publish, EVENTS)


def targeted() -> dict[str, float]:
    channel = wsgisse.Channel()
    subscriptions = [channel.subscribe(user=f"user{n}") for n in range(USERS)]
    return _measure(
        subscriptions, lambda n: channel.publish(n, audience=[f"user{n * 7 % USERS}"]), EVENTS
    )


def per_user() -> dict[str, float]:
    channels = [wsgisse.Channel(f"user{n}") for n in range(USERS)]
    subscriptions = [channel.subscribe() for channel in channels]
    return _measure(subscriptions, lambda n: channels[n * 7 % USERS].publish(n), EVENTS)


def broadcast(*, with_restricted: bool = False) -> dict[str, float]:
    channel = wsgisse.Channel()
    subscriptions = [channel.subscribe(user=f"user{n}") for n in range(USERS)]
    if with_restricted:
        channel.publish("held for one user", audience=["user1"])
    events = EVENTS // 10  # each one is USERS deliveries

    def publish(n: int) -> None:
        if n < events:
            channel.publish(n)

    result = _measure(subscriptions, publish, events * USERS)
    result["cpu_us_per_event"] = round(result["cpu_us_per_event"] * EVENTS / events, 1)
    return result


def idle_channels() -> dict[str, float]:
    names = [f"user{n}" for n in range(10_000)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    channels = [wsgisse.Channel(name) for name in names]
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del channels
    return {"bytes_per_channel": round(used / len(names), 1)}


def main() -> int:
    results: dict[str, dict[str, float]] = {
        "single": single(),
        "targeted": targeted(),
        "per-user": per_user(),
        "broadcast": broadcast(),
        "broadcast-mix": broadcast(with_restricted=True),
        "idle-channels": idle_channels(),
    }
    yardstick = results["single"]["cpu_us_per_event"]
    print(f"{'scenario':<15} {'CPU us/event':>13} {'us/delivery':>12} {'÷single':>8} delivered")
    for name, result in results.items():
        if "cpu_us_per_event" not in result:
            print(f"{name:<15} {result['bytes_per_channel']:>10} B per idle channel")
            continue
        ratio = result["cpu_us_per_event"] / yardstick
        print(
            f"{name:<15} {result['cpu_us_per_event']:>13} {result['cpu_us_per_delivery']:>12}"
            f" {ratio:>8.2f} {result['delivered']}/{result['expected']}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "inprocess.json").write_text(
        json.dumps({"users": USERS, "events": EVENTS, "results": results}, indent=2) + "\n"
    )
    ok = all(r.get("delivered", 0) == r.get("expected", 0) for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
