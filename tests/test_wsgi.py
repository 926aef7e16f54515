"""The WSGI layer in process: headers, first bytes, heartbeats, resume, refusals, cleanup.

Apps run under ``wsgiref.validate.validator`` (the test client's default), so every
response here is also checked against PEP 3333.
"""

from __future__ import annotations

import inspect
import itertools
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest

import wsgisse
from wsgisse import Channel, EventStream, ServerSentEvent, SSEMiddleware, stream_response
from wsgisse.testing import SSETestClient

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


def inner_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"inner"]


def channel_app(channel: Channel, **options: float) -> SSETestClient:
    return SSETestClient(SSEMiddleware(inner_app, channel, "/events", **options))  # type: ignore[arg-type]


def test_the_stream_has_the_event_stream_headers_and_no_hop_by_hop_header() -> None:
    with channel_app(Channel()).stream("/events") as response:
        assert response.status == "200 OK"
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-accel-buffering"] == "no"
        assert not HOP_BY_HOP & set(response.headers)


def test_the_first_chunk_is_a_comment_retry_and_the_starting_position() -> None:
    channel = Channel()
    with channel_app(channel, retry=2500).stream("/events") as response:
        assert response.next_comment().text == "wsgisse"
        assert response.parser.retry == 2500
        origin = response.parser.last_event_id
        assert origin != ""
        assert response.body == b": wsgisse\nretry: 2500\nid: %s\n\n" % origin.encode()
        with pytest.raises(TimeoutError):
            response.next_event(0.05)  # an id alone dispatches nothing
    sent = channel.publish("published while the client was away")
    with channel_app(channel).stream("/events", headers={"Last-Event-ID": origin}) as resumed:
        assert resumed.next_event().data == sent.data


def test_a_client_dropped_before_its_first_event_resumes_exactly() -> None:
    channel = Channel(history=100, max_backlog=5, slow_after=0)
    channel.publish("before")
    with channel_app(channel).stream("/events") as response:
        response.next_comment()
        position = response.parser.last_event_id
        sent = [channel.publish(n) for n in range(20)]  # dropped as slow before reading
        assert response.read_to_end() == []
    assert channel.counters()["slow_dropped"] == 1
    with channel_app(channel).stream("/events", headers={"Last-Event-ID": position}) as resumed:
        assert [event.data for event in resumed.events(20)] == [e.data for e in sent]


def test_other_paths_reach_the_wrapped_app() -> None:
    with channel_app(Channel()).stream("/elsewhere") as response:
        assert response.status == "200 OK"
        response.read_to_end()
        assert response.body == b"inner"


def test_published_events_arrive_with_names_ids_and_unicode_intact() -> None:
    channel = Channel()
    with channel_app(channel).stream("/events") as response:
        sent = channel.publish("héllo\nwörld 🎉", event="note")
        event = response.next_event()
        assert (event.type, event.data, event.last_event_id) == ("note", "héllo\nwörld 🎉", sent.id)


def test_heartbeats_flow_while_nothing_is_published() -> None:
    with channel_app(Channel(), heartbeat=0.05).stream("/events") as response:
        response.next_comment()
        assert response.next_comment(timeout=2).text == ""
        assert response.next_comment(timeout=2).text == ""


def test_no_heartbeat_is_written_while_events_flow() -> None:
    channel = Channel()
    with channel_app(channel, heartbeat=0.2).stream("/events") as response:
        response.next_comment()
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            channel.publish("busy")
            response.next_event()
        assert response.comments == []


@pytest.mark.parametrize("how", ["header", "query"])
def test_last_event_id_resumes_from_header_or_query(how: str) -> None:
    channel = Channel()
    sent = [channel.publish(n) for n in range(5)]
    client = channel_app(channel)
    if how == "header":
        response = client.stream("/events", headers={"Last-Event-ID": str(sent[1].id)})
    else:
        response = client.stream("/events", query={"lastEventId": str(sent[1].id)})
    with response:
        assert [event.data for event in response.events(3)] == ["2", "3", "4"]


def test_the_header_wins_over_a_stale_query_parameter() -> None:
    channel = Channel()
    sent = [channel.publish(n) for n in range(5)]
    with channel_app(channel).stream(
        "/events",
        query={"lastEventId": str(sent[0].id)},
        headers={"Last-Event-ID": str(sent[3].id)},
    ) as response:
        assert response.next_event().data == "4"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_methods_get_405_with_allow(method: str) -> None:
    channel = Channel()
    with channel_app(channel).stream("/events", method=method) as response:
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"
        response.read_to_end()
        assert b"GET" in response.body
    assert channel.subscriber_count == 0


@pytest.mark.parametrize(
    "value", ["x" * 1025, "caf\xc3", "\xff\xfe"], ids=["too-long", "truncated-utf8", "not-utf8"]
)
def test_a_malformed_last_event_id_gets_400(value: str) -> None:
    # ``value`` is the latin-1 view of the raw header bytes, as PEP 3333 hands them over.
    channel = Channel()
    app = SSEMiddleware(inner_app, channel)
    statuses: list[str] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> None:
        statuses.append(status)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/events",
        "QUERY_STRING": "",
        "HTTP_LAST_EVENT_ID": value,
    }
    body = b"".join(app(environ, start_response))  # type: ignore[arg-type]
    assert statuses == ["400 Bad Request"]
    assert b"Last-Event-ID" in body
    assert channel.subscriber_count == 0


def test_head_answers_the_headers_without_subscribing() -> None:
    channel = Channel()
    with channel_app(channel).stream("/events", method="HEAD") as response:
        assert response.status == "200 OK"
        assert response.read_to_end() == []
    assert channel.subscriber_count == 0


def test_a_closed_channel_answers_204_so_browsers_stop_reconnecting() -> None:
    channel = Channel()
    channel.close()
    with channel_app(channel).stream("/events") as response:
        assert response.status_code == 204


def test_disconnecting_unsubscribes_at_once() -> None:
    channel = Channel()
    client = channel_app(channel)
    response = client.stream("/events")
    response.next_comment()
    assert channel.subscriber_count == 1
    response.close()
    assert channel.subscriber_count == 0


def test_closing_the_channel_ends_open_streams_cleanly() -> None:
    channel = Channel()
    with channel_app(channel).stream("/events") as response:
        channel.publish("bye")
        channel.close()
        assert [event.data for event in response.read_to_end()] == ["bye"]
        assert response.ended


def test_a_generator_view_streams_what_it_yields() -> None:
    def events() -> Iterator[object]:
        yield "plain"
        yield {"json": True}
        yield ServerSentEvent("named", event="custom", id="7")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return stream_response(environ, start_response, events())

    with SSETestClient(app).stream("/") as response:
        received = response.read_to_end()
    assert [(e.type, e.data, e.last_event_id) for e in received] == [
        ("message", "plain", ""),
        ("message", '{"json":true}', ""),
        ("custom", "named", "7"),
    ]


def test_heartbeats_flow_while_a_generator_blocks_between_events() -> None:
    release = threading.Event()

    def events() -> Iterator[str]:
        yield "first"
        release.wait(10)
        yield "second"

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return stream_response(environ, start_response, events(), heartbeat=0.05)

    with SSETestClient(app).stream("/") as response:
        assert response.next_event().data == "first"
        response.next_comment()
        response.next_comment(timeout=2)
        response.next_comment(timeout=2)
        release.set()
        assert response.next_event().data == "second"


def test_disconnecting_runs_the_generators_finally_block() -> None:
    cleaned = threading.Event()

    def events() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
                time.sleep(0.01)
        finally:
            cleaned.set()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return stream_response(environ, start_response, events())

    with SSETestClient(app).stream("/") as response:
        response.events(3)
    assert cleaned.wait(5)


def test_an_error_in_the_generator_reaches_the_server() -> None:
    def events() -> Iterator[str]:
        yield "ok"
        raise RuntimeError("view failed")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return stream_response(environ, start_response, events())

    with SSETestClient(app).stream("/") as response:
        assert response.next_event().data == "ok"
        with pytest.raises(RuntimeError, match="view failed"):
            response.read_to_end()


def test_event_stream_refuses_a_non_positive_heartbeat() -> None:
    with pytest.raises(ValueError, match="heartbeat"):
        EventStream(iter(()), heartbeat=0)


def test_event_stream_close_is_idempotent_and_calls_on_close_once() -> None:
    calls: list[int] = []
    subscription = Channel().subscribe()
    stream = EventStream(subscription, on_close=lambda stream: calls.append(1))
    stream.close()
    stream.close()
    assert calls == [1]
    assert subscription.closed


def test_last_event_id_helper_reads_header_then_query() -> None:
    assert (
        wsgisse.last_event_id({"HTTP_LAST_EVENT_ID": "5", "QUERY_STRING": "lastEventId=3"}) == "5"
    )
    assert wsgisse.last_event_id({"QUERY_STRING": "lastEventId=%C3%A9"}) == "é"
    assert wsgisse.last_event_id({"QUERY_STRING": "a=1"}) is None
    assert wsgisse.last_event_id({"HTTP_LAST_EVENT_ID": ""}) is None


class _BusyWriter:
    """Stands in for the publish loop's writer: it reports a write every half interval."""

    remainder = b""
    bytes_sent = 0
    last_write = 0.0


class _ProvenFastPath:
    """Stands in for a FastPath whose proof succeeded: it lends the busy writer."""

    def __init__(self, writer: _BusyWriter) -> None:
        self.writer = writer

    def writer_for(self, body: object, returned: int) -> _BusyWriter:
        return self.writer

    def releases(self) -> bool:
        return False  # The stream keeps its greenlet: its own heartbeats are under test.


def test_a_stream_the_publish_loop_keeps_busy_sends_no_heartbeat_until_silence() -> None:
    subscription = Channel().subscribe()
    writer = _BusyWriter()
    heartbeat = 0.1
    fast_path = _ProvenFastPath(writer)
    stream = EventStream(subscription, heartbeat=heartbeat, fast_path=fast_path)  # type: ignore[arg-type]
    assert next(stream).startswith(b": wsgisse")
    writer.last_write = time.monotonic()
    busy_until = writer.last_write + 2.0  # 20 heartbeat intervals

    def write_continually() -> None:
        while time.monotonic() < busy_until:
            writer.last_write = time.monotonic()
            time.sleep(heartbeat / 10)

    thread = threading.Thread(target=write_continually)
    thread.start()
    # Waiting again after each interval must be a loop: a stream that recursed once per
    # interval would die of RecursionError after hours of traffic.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 25)
    try:
        assert next(stream) == b":\n\n"  # only once the writes stop
        assert time.monotonic() >= busy_until
    finally:
        sys.setrecursionlimit(limit)
        thread.join(5)
        stream.close()


def test_heartbeats_stay_an_interval_apart_after_the_publish_loop_went_quiet() -> None:
    subscription = Channel().subscribe()
    writer = _BusyWriter()
    heartbeat = 0.1
    fast_path = _ProvenFastPath(writer)
    stream = EventStream(subscription, heartbeat=heartbeat, fast_path=fast_path)  # type: ignore[arg-type]
    next(stream)
    writer.last_write = time.monotonic() - 60  # the loop wrote, long ago
    try:
        beats = []
        for _ in range(3):
            assert next(stream) == b":\n\n"
            beats.append(time.monotonic())
        gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
        assert all(gap >= heartbeat * 0.9 for gap in gaps), gaps
    finally:
        stream.close()
