"""The fast path in process: a publish writing to parked greenlets' sockets from one loop.

The subscribers are real greenlets parked in ``Subscription.get`` on a real gevent hub;
only the client's socket is a stand-in, so that a test can decide how much each
non-blocking send accepts, or make it fail. What is checked is ``_fanout``'s choice: who
is written to by the loop (and stays parked), who is woken to do it itself, and that the
bytes on the wire are exactly the frames, framed as the server frames them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import gevent
import pytest

from wsgisse import Channel, EventStreamParser, MessageEvent, Subscription
from wsgisse._direct import DirectWriter


class RawSocket:
    """The non-blocking OS socket: takes at most ``accept`` bytes a send (None: all)."""

    def __init__(self, accept: int | None = None, error: OSError | None = None) -> None:
        self.accept = accept
        self.error = error
        self.received = bytearray()
        self.sends = 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        if self.error is not None:
            raise self.error
        taken = len(data) if self.accept is None else min(self.accept, len(data))
        if taken == 0:
            raise BlockingIOError
        self.received += data[:taken]
        return taken


class ServerSocket:
    """gevent's cooperative socket around it: what the subscriber's own flush uses."""

    def __init__(self, raw: RawSocket, error: OSError | None = None) -> None:
        self._sock = raw
        self.error = error

    def sendall(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._sock.received += data


@pytest.fixture
def hub() -> Iterator[object]:
    hub = gevent.get_hub()
    yield hub
    hub.destroy(destroy_loop=False)


def gwait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        gevent.sleep(0.001)


def unchunk(wire: bytes) -> bytes:
    """The body bytes of an HTTP/1.1 chunked stream (chunks only, no terminator)."""
    body = b""
    while wire:
        size, rest = wire.split(b"\r\n", 1)
        length = int(size, 16)
        body += rest[:length]
        assert rest[length : length + 2] == b"\r\n"
        wire = rest[length + 2 :]
    return body


def datas(body: bytes) -> list[str]:
    return [e.data for e in EventStreamParser().feed(body) if isinstance(e, MessageEvent)]


class Parked:
    """A subscriber greenlet waiting in get(), with the socket lent to the publish loop."""

    def __init__(self, channel: Channel, raw: RawSocket, server: ServerSocket | None = None):
        self.channel = channel
        self.raw = raw
        self.subscription: Subscription = channel.subscribe()
        self.writer = DirectWriter(server or ServerSocket(raw), chunked=True)
        self.subscription._lend_socket(self.writer)  # noqa: SLF001 - what the stream does
        self.taken: list[bytes] = []
        self.greenlet = gevent.spawn(self._read)
        self.wait_parked()

    def _read(self) -> None:
        while True:
            self.taken.append(self.subscription.get(timeout=10))

    def wait_parked(self) -> None:
        fanout = self.channel._fanout  # noqa: SLF001 - whether it waits is the point
        gwait_until(lambda: self.subscription._member in fanout.parked)  # noqa: SLF001

    @property
    def parked(self) -> bool:
        return self.subscription._member in self.channel._fanout.parked  # noqa: SLF001

    def stop(self) -> None:
        self.greenlet.kill()


@pytest.mark.usefixtures("hub")
def test_the_loop_writes_one_framed_frame_and_the_subscriber_stays_parked() -> None:
    channel = Channel()
    readers = [Parked(channel, RawSocket()) for _ in range(3)]
    sent = channel.publish("hello")
    for reader in readers:
        assert unchunk(bytes(reader.raw.received)) == sent.encode()
        assert reader.parked
        assert reader.taken == []  # its greenlet never woke
    assert channel.counters()["direct_writes"] == 3
    for reader in readers:
        reader.stop()


@pytest.mark.usefixtures("hub")
def test_a_short_send_wakes_the_subscriber_which_writes_the_rest_first() -> None:
    channel = Channel()
    raw = RawSocket(accept=7)
    reader = Parked(channel, raw)
    sent = channel.publish("a longer event than seven bytes")
    assert len(raw.received) == 7
    gwait_until(lambda: len(raw.received) > 7)  # the greenlet flushed the remainder
    assert unchunk(bytes(raw.received)) == sent.encode()
    reader.wait_parked()
    raw.accept = None
    second = channel.publish("next")  # the loop serves it again, after the remainder
    assert unchunk(bytes(raw.received)) == sent.encode() + second.encode()
    assert reader.taken == []
    reader.stop()


@pytest.mark.usefixtures("hub")
def test_a_full_socket_takes_nothing_and_the_subscriber_writes_it_all() -> None:
    channel = Channel()
    raw = RawSocket(accept=0)
    reader = Parked(channel, raw)
    sent = channel.publish("x")
    assert raw.received == b""
    gwait_until(lambda: bytes(raw.received) != b"")
    assert unchunk(bytes(raw.received)) == sent.encode()
    reader.stop()


@pytest.mark.usefixtures("hub")
def test_a_subscriber_too_far_behind_is_woken_and_catches_up_itself() -> None:
    channel = Channel(history=1000)
    raw = RawSocket()
    reader = Parked(channel, raw)
    member = reader.subscription._member  # noqa: SLF001
    # Hold the loop off (as if the subscriber were busy) while 100 events arrive.
    channel._fanout.parked.pop(member)  # noqa: SLF001
    sent = [channel.publish(n) for n in range(99)]
    channel._fanout.parked[member] = None  # noqa: SLF001 - back to waiting, 99 behind
    sent.append(channel.publish(99))
    assert raw.received == b""  # 100 behind: past the loop's limit of 64
    gwait_until(lambda: len(reader.taken) == 1)
    assert datas(reader.taken[0]) == [str(n) for n in range(100)]
    reader.stop()


@pytest.mark.usefixtures("hub")
def test_a_prelude_goes_through_the_subscribers_own_write() -> None:
    channel = Channel()
    channel.publish("before")
    raw = RawSocket()
    subscription = channel.subscribe("unknown-id")  # prelude: the history-lost notice
    writer = DirectWriter(ServerSocket(raw), chunked=True)
    subscription._lend_socket(writer)  # noqa: SLF001
    taken: list[bytes] = []
    greenlet = gevent.spawn(lambda: taken.append(subscription.get(timeout=5)))
    gwait_until(lambda: bool(taken))  # the prelude is there at once: no parking
    assert b"wsgisse-history-lost" in taken[0]
    greenlet.join(5)
    assert raw.received == b""
    subscription.close()


@pytest.mark.usefixtures("hub")
def test_an_ended_subscriber_is_woken_not_written_to() -> None:
    channel = Channel()
    raw = RawSocket()
    reader = Parked(channel, raw)
    member = reader.subscription._member  # noqa: SLF001
    fanout = channel._fanout  # noqa: SLF001
    with fanout.lock:
        fanout._end_locked(member, "revoked")  # noqa: SLF001 - ended but still parked
        fanout.parked[member] = None
    channel.publish("after the end")
    assert raw.received == b""
    reader.greenlet.join(5)
    assert reader.greenlet.ready()
    assert reader.taken == []


class ParkedAs(Parked):
    """A parked subscriber of a named user."""

    def __init__(self, channel: Channel, raw: RawSocket, user: str) -> None:
        self.channel = channel
        self.raw = raw
        self.subscription = channel.subscribe(user=user)
        self.writer = DirectWriter(ServerSocket(raw), chunked=True)
        self.subscription._lend_socket(self.writer)  # noqa: SLF001
        self.taken = []
        self.greenlet = gevent.spawn(self._read)
        self.wait_parked()


@pytest.mark.usefixtures("hub")
def test_an_event_for_an_audience_is_written_to_its_users_only_by_the_loop() -> None:
    channel = Channel()
    alice, bob = ParkedAs(channel, RawSocket(), "alice"), ParkedAs(channel, RawSocket(), "bob")
    anonymous = Parked(channel, RawSocket())
    private = channel.publish("for alice", audience=["alice"])
    assert unchunk(bytes(alice.raw.received)) == private.encode()
    assert bob.raw.received == anonymous.raw.received == b""
    assert bob.parked  # nobody else was even woken
    assert anonymous.parked
    public = channel.publish("for everybody")
    assert unchunk(bytes(alice.raw.received)) == private.encode() + public.encode()
    for other in (bob, anonymous):
        assert unchunk(bytes(other.raw.received)) == public.encode()
    assert [reader.taken for reader in (alice, bob, anonymous)] == [[], [], []]
    assert channel.counters()["direct_writes"] == 4
    for reader in (alice, bob, anonymous):
        reader.stop()


@pytest.mark.usefixtures("hub")
def test_a_send_error_leaves_the_write_to_the_subscriber_which_ends_as_gone() -> None:
    channel = Channel()
    raw = RawSocket(error=ConnectionResetError())
    reader = Parked(channel, raw, ServerSocket(raw, error=BrokenPipeError()))
    channel.publish("x")
    assert reader.writer.remainder != b""  # the loop sent nothing and moved on
    reader.greenlet.join(5)
    assert reader.greenlet.ready()
    assert reader.subscription.end_reason == "gone"
    assert channel.subscriber_count == 0


@pytest.mark.usefixtures("hub")
def test_http_1_0_gets_raw_frames_without_chunking() -> None:
    channel = Channel()
    raw = RawSocket()
    subscription = channel.subscribe()
    subscription._lend_socket(DirectWriter(ServerSocket(raw), chunked=False))  # noqa: SLF001
    greenlet = gevent.spawn(subscription.get, True, 10)
    fanout = channel._fanout  # noqa: SLF001
    gwait_until(lambda: subscription._member in fanout.parked)  # noqa: SLF001
    sent = channel.publish("raw")
    assert bytes(raw.received) == sent.encode()
    greenlet.kill()


def test_a_thread_subscriber_never_lends_its_socket() -> None:
    channel = Channel()
    raw = RawSocket()
    subscription = channel.subscribe()  # no hub here: a thread's waiter
    subscription._lend_socket(DirectWriter(ServerSocket(raw), chunked=True))  # noqa: SLF001
    channel.publish("x")
    assert raw.received == b""
    assert datas(subscription.get(timeout=1)) == ["x"]


@pytest.mark.parametrize("lent", [True, False], ids=["fast-path", "ordinary"])
def test_a_publish_after_a_subscribers_hub_ended_neither_raises_nor_blocks(lent: bool) -> None:
    channel = Channel()
    parked = threading.Event()

    def subscriber_thread() -> None:
        hub = gevent.get_hub()
        subscription = channel.subscribe()
        if lent:
            writer = DirectWriter(ServerSocket(RawSocket()), chunked=True)
            subscription._lend_socket(writer)  # noqa: SLF001
        gevent.spawn(subscription.get, True, 30)
        fanout = channel._fanout  # noqa: SLF001
        gwait_until(lambda: subscription._member in fanout.parked)  # noqa: SLF001
        parked.set()
        hub.destroy(destroy_loop=True)  # The thread ends with its subscriber still parked.

    thread = threading.Thread(target=subscriber_thread)
    thread.start()
    assert parked.wait(10)
    thread.join(10)
    assert not thread.is_alive()
    channel.publish("nobody is left to serve")  # must not raise
    assert channel.counters()["events_published"] == 1


@pytest.mark.usefixtures("hub")
def test_a_broadcast_to_thousands_gives_the_cyclic_gc_nothing_to_count() -> None:
    """No object the GC tracks is made per member: with thousands of streams, a tuple per
    member and publish set off full collections (tens of ms) every few seconds."""
    import gc  # noqa: PLC0415 - only this test looks at the collector

    channel = Channel()
    readers = [Parked(channel, RawSocket()) for _ in range(2000)]
    try:
        gc.collect()
        before = gc.get_stats()[0]["collections"]
        for n in range(3):
            channel.publish(f"event {n}")
        assert gc.get_stats()[0]["collections"] == before  # 700 allocations start one
        assert all(reader.parked for reader in readers)
        assert channel.counters()["direct_writes"] == 6000
    finally:
        for reader in readers:
            reader.stop()
