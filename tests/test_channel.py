"""Channel and Subscription: fan-out, ids, replay, slow subscribers, closing."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import pytest

import wsgisse
from wsgisse import (
    HISTORY_LOST_EVENT,
    Channel,
    ChannelClosedError,
    EventStreamParser,
    InvalidEventError,
    MessageEvent,
    SubscriptionClosedError,
)
from wsgisse.testing import wait_until


def parse(chunk: bytes) -> list[MessageEvent]:
    return [item for item in EventStreamParser().feed(chunk) if isinstance(item, MessageEvent)]


def datas(chunk: bytes) -> list[str]:
    return [event.data for event in parse(chunk)]


def test_every_subscriber_gets_every_event_published_after_it_subscribed() -> None:
    channel = Channel()
    channel.publish("before")
    first, second = channel.subscribe(), channel.subscribe()
    channel.publish("a")
    channel.publish("b")
    assert datas(first.get(timeout=1)) == ["a", "b"]
    assert datas(second.get(timeout=1)) == ["a", "b"]


def test_publish_returns_the_event_with_an_assigned_unique_ordered_id() -> None:
    channel = Channel()
    sent = [channel.publish(n, event="tick") for n in range(3)]
    assert [event.data for event in sent] == ["0", "1", "2"]
    assert all(event.event == "tick" for event in sent)
    ids = [event.id for event in sent]
    assert len(set(ids)) == 3
    assert [int(str(event_id).rsplit("-", 1)[1]) for event_id in ids] == [1, 2, 3]
    assert channel.last_event_id == ids[-1]


def test_ids_of_two_channels_never_collide() -> None:
    assert Channel().publish(1).id != Channel().publish(1).id


def test_the_subscriber_receives_the_bytes_the_event_encodes_to_with_its_id() -> None:
    channel = Channel()
    subscription = channel.subscribe()
    sent = channel.publish({"a": [1, "é"]}, event="update", retry=500)
    assert subscription.get(timeout=1) == sent.encode()
    assert sent.data == '{"a":[1,"é"]}'


def test_all_subscribers_share_one_bytes_object_per_event() -> None:
    channel = Channel()
    subscriptions = [channel.subscribe() for _ in range(3)]
    channel.publish("shared")
    chunks = [subscription.get(timeout=1) for subscription in subscriptions]
    assert chunks[0] is chunks[1] is chunks[2]


def test_a_subscriber_behind_gets_everything_it_missed_in_one_chunk() -> None:
    channel = Channel()
    subscription = channel.subscribe()
    for n in range(50):
        channel.publish(n)
    assert datas(subscription.get(timeout=1)) == [str(n) for n in range(50)]
    with pytest.raises(queue.Empty):
        subscription.get(block=False)


def test_explicit_ids_are_kept_and_duplicates_or_empty_ids_refused() -> None:
    channel = Channel()
    assert channel.publish("x", id="order-17").id == "order-17"
    with pytest.raises(InvalidEventError) as duplicate:
        channel.publish("y", id="order-17")
    assert duplicate.value.field == "id"
    with pytest.raises(InvalidEventError):
        channel.publish("z", id="")
    with pytest.raises(InvalidEventError):
        channel.publish("z", id="a\nb")


@pytest.mark.parametrize(
    "kwargs",
    [{"event": "a\nb"}, {"event": "a\rb"}, {"id": "a\x00b"}, {"retry": -1}, {"retry": 2**31}],
)
def test_bad_fields_raise_before_anything_is_sent(kwargs: dict[str, object]) -> None:
    channel = Channel()
    subscription = channel.subscribe()
    with pytest.raises(InvalidEventError):
        channel.publish("data", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(queue.Empty):
        subscription.get(block=False)
    assert channel.last_event_id is None


def test_publishing_no_data_is_refused() -> None:
    with pytest.raises(InvalidEventError) as refused:
        Channel().publish(None)
    assert refused.value.field == "data"


def test_resume_replays_exactly_the_events_after_the_last_event_id_then_live() -> None:
    channel = Channel(history=100)
    sent = [channel.publish(n) for n in range(10)]
    subscription = channel.subscribe(last_event_id=sent[6].id)
    channel.publish(10)
    assert datas(subscription.get(timeout=1)) == ["7", "8", "9", "10"]


def test_resume_with_the_newest_id_replays_nothing() -> None:
    channel = Channel()
    sent = channel.publish("latest")
    subscription = channel.subscribe(last_event_id=sent.id)
    with pytest.raises(queue.Empty):
        subscription.get(block=False)


def test_an_unknown_last_event_id_is_answered_with_the_history_lost_event() -> None:
    channel = Channel()
    oldest = channel.publish("first")
    subscription = channel.subscribe(last_event_id="from-another-process")
    channel.publish("live")
    lost, live = parse(subscription.get(timeout=1))
    assert lost.type == HISTORY_LOST_EVENT == "wsgisse-history-lost"
    assert json.loads(lost.data) == {"lastEventId": "from-another-process", "oldestId": oldest.id}
    assert live.data == "live"


def test_an_id_older_than_the_history_is_answered_with_history_lost() -> None:
    channel = Channel(history=3, max_backlog=1)
    sent = [channel.publish(n) for n in range(10)]
    subscription = channel.subscribe(last_event_id=sent[2].id)
    (lost,) = parse(subscription.get(timeout=1))
    assert lost.type == HISTORY_LOST_EVENT
    assert json.loads(lost.data)["oldestId"] is not None


def test_history_zero_replays_nothing() -> None:
    channel = Channel(history=0)
    sent = [channel.publish(n) for n in range(3)]
    subscription = channel.subscribe(last_event_id=sent[0].id)
    assert parse(subscription.get(timeout=1))[0].type == HISTORY_LOST_EVENT


def test_a_slow_subscriber_is_dropped_and_can_resume_what_it_missed() -> None:
    channel = Channel(history=100, max_backlog=10, slow_after=0)
    slow = channel.subscribe()
    fast = channel.subscribe()
    sent = [channel.publish(n) for n in range(5)]
    assert datas(slow.get(timeout=1)) == ["0", "1", "2", "3", "4"]
    for n in range(5, 16):
        sent.append(channel.publish(n))
        assert datas(fast.get(timeout=1))[-1] == str(n)
    with pytest.raises(SubscriptionClosedError) as dropped:
        slow.get(timeout=1)
    assert dropped.value.reason == "slow"
    assert channel.subscriber_count == 1
    resumed = channel.subscribe(last_event_id=sent[4].id)
    assert datas(resumed.get(timeout=1)) == [str(n) for n in range(5, 16)]


def test_the_skip_policy_jumps_a_slow_subscriber_to_the_head_and_says_so() -> None:
    channel = Channel(history=100, max_backlog=3, slow_after=0, on_slow="skip")
    subscription = channel.subscribe()
    for n in range(5):
        channel.publish(n)
    (lost,) = parse(subscription.get(timeout=1))
    assert lost.type == HISTORY_LOST_EVENT
    channel.publish("next")
    assert datas(subscription.get(timeout=1)) == ["next"]


def test_a_burst_a_reading_subscriber_is_taking_is_not_slowness() -> None:
    channel = Channel(history=100, max_backlog=10)
    subscription = channel.subscribe()
    for n in range(90):  # nine times the backlog, faster than anybody reads
        channel.publish(n)
    assert datas(subscription.get(timeout=1)) == [str(n) for n in range(90)]
    assert channel.counters()["slow_dropped"] == 0


def test_a_subscriber_behind_for_longer_than_slow_after_is_slow() -> None:
    channel = Channel(history=100, max_backlog=10, slow_after=0.05)
    subscription = channel.subscribe()
    for n in range(20):
        channel.publish(n)
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:  # the behaviour under test is the time waited
        time.sleep(0.01)
    with pytest.raises(SubscriptionClosedError) as dropped:
        subscription.get(timeout=1)
    assert dropped.value.reason == "slow"


def test_a_subscriber_not_reading_while_the_log_fills_is_dropped_after_slow_after() -> None:
    channel = Channel(history=10, max_backlog=5, slow_after=0.1)
    subscription = channel.subscribe()
    for n in range(25):  # the log holds 10: publishing waits for it, then drops it
        channel.publish(n)
    with pytest.raises(SubscriptionClosedError) as dropped:
        subscription.get(timeout=1)
    assert dropped.value.reason == "slow"


def test_the_history_is_bounded_in_bytes_and_an_id_outside_it_is_lost() -> None:
    channel = Channel(history=1000, history_bytes=10_000)
    sent = [channel.publish("x" * 900) for _ in range(30)]  # about 1 KB each encoded
    held = [event for event in sent if event.id in channel._fanout.log]  # noqa: SLF001
    assert 5 <= len(held) <= 10
    assert channel._fanout.log.held_bytes <= 10_000  # noqa: SLF001
    edge = sent.index(held[0])
    # Resuming after the oldest held event replays exactly what follows it...
    resumed = channel.subscribe(last_event_id=held[0].id)
    assert len(datas(resumed.get(timeout=1))) == len(held) - 1
    # ...and after the one just outside the byte window, the client is told.
    (lost,) = parse(channel.subscribe(last_event_id=sent[edge - 1].id).get(timeout=1))
    assert lost.type == HISTORY_LOST_EVENT
    assert json.loads(lost.data)["oldestId"] == held[0].id


def test_an_event_larger_than_the_byte_bound_is_refused_before_it_is_sent() -> None:
    channel = Channel(history_bytes=1000)
    subscription = channel.subscribe()
    with pytest.raises(InvalidEventError, match="history_bytes"):
        channel.publish("x" * 2000)
    channel.publish("small")
    assert datas(subscription.get(timeout=1)) == ["small"]


def test_a_subscriber_of_an_empty_channel_is_told_a_position_it_can_resume_from() -> None:
    channel = Channel()
    subscription = channel.subscribe()
    position = channel._fanout.position(subscription._member)  # noqa: SLF001
    assert position != ""
    assert "-" not in position  # the channel's epoch, before its first event "<epoch>-1"
    sent = [channel.publish(n) for n in range(3)]
    resumed = channel.subscribe(last_event_id=position)
    assert datas(resumed.get(timeout=1)) == ["0", "1", "2"]
    assert sent[-1].id is not None


def test_memory_stays_bounded_by_the_log_whatever_the_subscribers_do() -> None:
    channel = Channel(history=50, max_backlog=10, slow_after=0.1)
    idle = [channel.subscribe() for _ in range(20)]
    sent = [channel.publish(n) for n in range(10_000)]
    # Only the newest 50 frames are held: an older id cannot be resumed any more.
    resumed = channel.subscribe(last_event_id=sent[-50].id)
    assert datas(resumed.get(timeout=1)) == [str(n) for n in range(9951, 10_000)]
    (lost,) = parse(channel.subscribe(last_event_id=sent[-51].id).get(timeout=1))
    assert lost.type == HISTORY_LOST_EVENT
    assert json.loads(lost.data)["oldestId"] == sent[-50].id
    with pytest.raises(SubscriptionClosedError):
        idle[0].get(timeout=1)


def test_close_ends_streams_after_what_they_have_pending_and_refuses_more() -> None:
    channel = Channel()
    subscription = channel.subscribe()
    channel.publish("last words")
    channel.close()
    channel.close()
    assert datas(subscription.get(timeout=1)) == ["last words"]
    with pytest.raises(SubscriptionClosedError) as ended:
        subscription.get(timeout=1)
    assert ended.value.reason == "channel-closed"
    with pytest.raises(ChannelClosedError):
        channel.publish("more")
    with pytest.raises(ChannelClosedError):
        channel.subscribe()
    assert channel.subscriber_count == 0


def test_close_wakes_a_thread_blocked_in_get() -> None:
    channel = Channel()
    subscription = channel.subscribe()
    outcome: list[BaseException] = []
    thread = threading.Thread(target=lambda: _get_into(subscription, outcome))
    thread.start()
    wait_parked(channel)  # The close must wake a waiting thread, not one yet to wait.
    subscription.close()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome[0], SubscriptionClosedError)
    assert channel.subscriber_count == 0


def test_closing_a_subscription_twice_unsubscribes_once() -> None:
    channel = Channel()
    kept = channel.subscribe()
    gone = channel.subscribe()
    gone.close()
    gone.close()
    assert channel.subscriber_count == 1
    assert kept.closed is False


def test_get_times_out_with_queue_empty() -> None:
    with pytest.raises(queue.Empty):
        Channel().subscribe().get(timeout=0.01)


def test_end_subscriptions_keeps_the_channel_open() -> None:
    channel = Channel()
    subscriptions = [channel.subscribe() for _ in range(3)]
    assert channel.end_subscriptions("revoked") == 3
    for subscription in subscriptions:
        with pytest.raises(SubscriptionClosedError) as ended:
            subscription.get(timeout=1)
        assert ended.value.reason == "revoked"
    channel.publish("still open")


def test_publishing_from_many_threads_reaches_every_subscriber_in_one_order() -> None:
    channel = Channel(history=5000)
    subscriptions = [channel.subscribe() for _ in range(5)]

    def publisher(name: str) -> None:
        for n in range(200):
            channel.publish(f"{name}{n}")

    threads = [threading.Thread(target=publisher, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    orders = []
    for subscription in subscriptions:
        received: list[str] = []
        while len(received) < 800:
            received += datas(subscription.get(timeout=5))
        orders.append(received)
    assert all(order == orders[0] for order in orders)
    for name in "abcd":
        assert [item for item in orders[0] if item[0] == name] == [f"{name}{n}" for n in range(200)]


@pytest.mark.parametrize("kwargs", [{"history": -1}, {"max_backlog": 0}, {"on_slow": "drop"}])
def test_impossible_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Channel(**kwargs)  # type: ignore[arg-type]


def test_channel_says_it_is_not_gevents_channel() -> None:
    assert "not gevent" in (wsgisse.Channel.__doc__ or "")


def test_waiting_again_and_again_on_a_quiet_channel_holds_nothing_more() -> None:
    channel = Channel()
    subscription = channel.subscribe()
    for _ in range(50):
        with pytest.raises(queue.Empty):
            subscription.get(timeout=0.001)
    # A subscription leaves the parked set as soon as it wakes, timeout or not.
    assert len(channel._fanout.parked) == 0  # noqa: SLF001 - the leak this guards against is internal
    subscription.close()
    assert len(channel._fanout.parked) == 0  # noqa: SLF001


def test_an_ended_subscription_gets_what_was_published_before_and_nothing_after() -> None:
    channel = Channel()
    subscription = channel.subscribe()
    channel.publish("before")
    subscription.close("revoked")
    channel.publish("secret")
    assert datas(subscription.get(timeout=1)) == ["before"]
    with pytest.raises(SubscriptionClosedError):
        subscription.get(timeout=1)


def test_end_subscriptions_and_close_deliver_nothing_published_afterwards() -> None:
    channel = Channel()
    first, second = channel.subscribe(), channel.subscribe()
    channel.end_subscriptions("revoked")
    channel.publish("after the end")
    channel.close()
    for subscription in (first, second):
        with pytest.raises(SubscriptionClosedError):
            subscription.get(timeout=1)


def test_an_event_with_an_audience_reaches_only_those_users_live_and_replayed() -> None:
    channel = Channel()
    alice = channel.subscribe(user="alice")
    bob = channel.subscribe(user="bob")
    anonymous = channel.subscribe()
    first = channel.publish("for all")
    channel.publish("for alice", audience=["alice"])
    channel.publish("for all again")
    assert datas(alice.get(timeout=1)) == ["for all", "for alice", "for all again"]
    assert datas(bob.get(timeout=1)) == ["for all", "for all again"]
    assert datas(anonymous.get(timeout=1)) == ["for all", "for all again"]
    replayed_to_bob = channel.subscribe(last_event_id=first.id, user="bob")
    assert datas(replayed_to_bob.get(timeout=1)) == ["for all again"]
    replayed_to_alice = channel.subscribe(last_event_id=first.id, user="alice")
    assert datas(replayed_to_alice.get(timeout=1)) == ["for alice", "for all again"]


def test_a_subscriber_shown_nothing_keeps_waiting_rather_than_waking_empty() -> None:
    channel = Channel()
    bob = channel.subscribe(user="bob")
    channel.publish("private", audience={"alice"})
    with pytest.raises(queue.Empty):
        bob.get(timeout=0.05)
    channel.publish("public")
    assert datas(bob.get(timeout=1)) == ["public"]


def test_end_subscriptions_wakes_a_parked_thread_at_once() -> None:
    channel = Channel()
    subscription = channel.subscribe()
    outcome: list[BaseException] = []
    thread = threading.Thread(target=lambda: _get_into(subscription, outcome))
    thread.start()
    wait_parked(channel)
    channel.end_subscriptions("revoked")
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome[0], SubscriptionClosedError)


def _get_into(subscription: wsgisse.Subscription, outcome: list[BaseException]) -> None:
    try:
        subscription.get(timeout=10)
    except BaseException as exc:  # noqa: BLE001
        outcome.append(exc)


def wait_parked(channel: Channel) -> None:
    wait_until(lambda: len(channel._fanout.parked) == 1, timeout=5)  # noqa: SLF001


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"event": "e"}, {"retry": 0}, {"event": "é", "retry": 5, "id": "given"}],
)
def test_the_event_publish_returns_is_the_one_built_with_its_id(kwargs: dict[str, Any]) -> None:
    channel = Channel()
    sent = channel.publish({"k": "vé\nline"}, **kwargs)
    fields = {key: value for key, value in kwargs.items() if key != "id"}
    expected = wsgisse.ServerSentEvent({"k": "vé\nline"}, id=sent.id, **fields)
    assert sent == expected
    assert sent.encode() == expected.encode()
    assert hash(sent) == hash(expected)


def test_a_publisher_outrunning_a_reading_subscriber_waits_rather_than_drop_events() -> None:
    channel = Channel(history=10, max_backlog=5)  # a log of 10 events
    subscription = channel.subscribe()
    received: list[str] = []

    def read() -> None:
        while len(received) < 300:
            received.extend(datas(subscription.get(timeout=10)))

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(300):  # thirty times the log, as fast as this thread can
        channel.publish(n)
    reader.join(20)
    assert received == [str(n) for n in range(300)]
    assert channel.counters()["slow_dropped"] == 0


def test_a_subscriber_that_never_reads_holds_publishers_back_at_most_slow_after() -> None:
    channel = Channel(history=10, max_backlog=5, slow_after=0.2)
    frozen = channel.subscribe()
    started = time.monotonic()
    for n in range(100):
        channel.publish(n)
    assert time.monotonic() - started < 3  # one wait of about 0.2 s, not one per event
    assert channel.counters()["slow_dropped"] == 1
    with pytest.raises(SubscriptionClosedError) as dropped:
        frozen.get(timeout=1)
    assert dropped.value.reason == "slow"


def test_an_idle_channel_costs_under_a_kibibyte_and_grows_with_its_events() -> None:
    import gc  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    names = [f"user-{n}" for n in range(2000)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        channels = [Channel(name) for name in names]
        idle = (tracemalloc.get_traced_memory()[0] - before) / len(channels)
        for channel in channels[:100]:
            for n in range(3):
                channel.publish(n)
        grown = (tracemalloc.get_traced_memory()[0] - before) / len(channels)
    finally:
        tracemalloc.stop()
    assert idle < 1024, idle
    # Three small events in a twentieth of the channels: a few hundred bytes each, not
    # a history's worth of preallocated slots.
    assert grown - idle < 100, (idle, grown)


def test_an_event_for_one_user_wakes_only_that_users_subscribers() -> None:
    channel = Channel()
    subscriptions = {f"user{n}": channel.subscribe(user=f"user{n}") for n in range(50)}
    fanout = channel._fanout  # noqa: SLF001 - who is parked is the behaviour under test
    threads = [
        threading.Thread(target=subscription.get, args=(True, 10))
        for subscription in subscriptions.values()
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(fanout.parked) == 50, timeout=5)
    sent = channel.publish("for user7", audience=["user7"])
    wait_until(lambda: not threads[7].is_alive(), timeout=5)
    assert len(fanout.parked) == 49
    assert subscriptions["user7"]._member not in fanout.parked  # noqa: SLF001
    channel.publish("for everybody")
    for thread in threads:
        thread.join(5)
    assert sent.id is not None


def test_a_subscriber_parked_through_many_events_for_others_stays_exact() -> None:
    channel = Channel(history=100)  # a log of 100: far fewer than the events for others
    bob = channel.subscribe(user="bob")
    with pytest.raises(queue.Empty):
        bob.get(timeout=0.01)  # parked
    first = channel.publish("public")
    assert datas(bob.get(timeout=1)) == ["public"]
    for n in range(1000):
        channel.publish(f"for alice {n}", audience=["alice"])
    with pytest.raises(queue.Empty):
        bob.get(timeout=0.01)  # nothing it may see
    last = channel.publish("public again")
    assert datas(bob.get(timeout=1)) == ["public again"]
    assert channel.counters()["slow_dropped"] == 0
    # A reconnecting bob is replayed exactly what he may see after his last event...
    replayed = channel.subscribe(last_event_id=last.id, user="bob")
    with pytest.raises(queue.Empty):
        replayed.get(timeout=0.01)
    # ...and one far behind is told what was lost, as anybody would be.
    (lost,) = parse(channel.subscribe(last_event_id=first.id, user="bob").get(timeout=1))
    assert lost.type == HISTORY_LOST_EVENT


def test_1200_events_of_1_mib_keep_only_the_byte_bound_alive() -> None:
    import psutil  # noqa: PLC0415

    process = psutil.Process()
    channel = Channel(history=1000)  # 16 MiB of history by default, whatever the count
    megabyte = "x" * (1024 * 1024 - 64)
    before = process.memory_info().rss
    for _ in range(1200):
        channel.publish(megabyte)
    grown = process.memory_info().rss - before
    held = channel._fanout.log  # noqa: SLF001
    assert held.held_bytes <= 16 * 1024 * 1024
    assert len(held) == 16  # not the 1,000 events the count alone would keep: about 1 GiB
    assert grown < 64 * 1024 * 1024, grown
