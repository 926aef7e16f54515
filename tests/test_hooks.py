"""SSEApp's connection hooks: the snapshot's place in the stream, and exactly-once calls.

In process through ``wsgisse.testing.SSETestClient`` (validator-wrapped), then on
gunicorn ``-k gevent`` (where the fast path writes live events to the socket itself)
and Werkzeug's threaded server, with ``tests/live/hooks_app.py``.
"""

from __future__ import annotations

import json
import logging
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _servers import WSGI_SERVERS, ServerProcess
from _servers import EventStream as LiveStream

import wsgisse
from wsgisse import END_EVENT, Channel, Connection, ServerSentEvent, SSEApp
from wsgisse._lifecycle import _process as lifecycle_process
from wsgisse.testing import SSETestClient, wait_until

StartServer = Callable[[ServerProcess], ServerProcess]
OpenSSE = Callable[..., LiveStream]


class Recorder:
    """Hooks that note each call, and return a snapshot of who is online."""

    def __init__(self, channel: Channel | None = None) -> None:
        self.calls: list[tuple[str, Connection]] = []
        self.online: set[str] = set()
        self.channel = channel

    def on_connect(self, connection: Connection) -> ServerSentEvent:
        self.calls.append(("connect", connection))
        self.online.add(connection.id)
        if self.channel is not None:
            # Published while the hook runs: it must still come after the snapshot.
            self.channel.publish("during on_connect")
        return ServerSentEvent({"online": len(self.online)}, event="snapshot")

    def on_disconnect(self, connection: Connection) -> None:
        self.calls.append(("disconnect", connection))
        self.online.discard(connection.id)

    def count(self, kind: str) -> int:
        return sum(1 for call, _ in self.calls if call == kind)


def hooked(channels: object, recorder: Recorder, **options: object) -> SSEApp:
    return SSEApp(
        channels,  # type: ignore[arg-type]
        on_connect=recorder.on_connect,
        on_disconnect=recorder.on_disconnect,
        **options,  # type: ignore[arg-type]
    )


# -- where the snapshot goes -------------------------------------------------------------------


def test_the_snapshot_follows_the_preamble_and_precedes_replayed_then_live_events() -> None:
    channel = Channel()
    first = channel.publish("one")
    channel.publish("two")
    recorder = Recorder(channel)
    client = SSETestClient(hooked(channel, recorder, retry=1000))
    with client.stream("/", headers={"Last-Event-ID": first.id or ""}) as response:
        events = response.events(3)
        channel.publish("after")
        events.append(response.next_event())
        # The preamble (its comment, retry and starting position), then the snapshot.
        assert re.match(
            rb": wsgisse\nretry: 1000\n(id: [^\n]+\n)?\nevent: snapshot\n", response.body
        )
    assert [(e.type, e.data) for e in events] == [
        ("snapshot", '{"online":1}'),
        ("message", "two"),
        ("message", "during on_connect"),
        ("message", "after"),
    ]
    # The snapshot has no id: the browser still holds the position it resumed from.
    assert events[0].last_event_id == first.id
    assert events[-1].last_event_id == channel.last_event_id


def test_on_a_multiplexed_stream_the_snapshot_precedes_every_channels_replay() -> None:
    news, alerts = Channel("news"), Channel("alerts")
    recorder = Recorder()
    client = SSETestClient(hooked({"news": news, "alerts": alerts}, recorder))
    with client.stream("/?channel=news&channel=alerts") as response:
        assert response.next_event().type == "snapshot"
        position = response.parser.last_event_id
        news.publish("n1")
        alerts.publish("a1")
        assert [e.data for e in response.events(2)] == ["n1", "a1"]
        resume = response.parser.last_event_id
    news.publish("n2")
    headers = {"Last-Event-ID": resume}
    with client.stream("/?channel=news&channel=alerts", headers=headers) as response:
        assert [e.type for e in response.events(2)] == ["snapshot", "message"]
    assert "news=" in position  # the snapshot left the preamble's composite position
    resumed = [c for kind, c in recorder.calls if kind == "connect"][1]
    assert resumed.last_event_id == resume
    assert resumed.channels == ("news", "alerts")


def test_a_snapshot_of_several_events_arrives_in_order_and_none_means_no_snapshot() -> None:
    channel = Channel()
    replies: Iterator[Any] = iter(
        [[ServerSentEvent("a", event="s"), ServerSentEvent("b", event="s")], None]
    )
    client = SSETestClient(SSEApp(channel, on_connect=lambda connection: next(replies)))
    with client.stream("/") as response:
        assert [e.data for e in response.events(2)] == ["a", "b"]
    with client.stream("/") as response:
        response.next_comment()
        channel.publish("live")
        assert response.next_event().data == "live"


# -- the connection ----------------------------------------------------------------------------


def test_the_connection_names_the_user_channels_address_and_resume_point() -> None:
    channels = {"a": Channel("a"), "b": Channel("b")}
    recorder = Recorder()
    app = hooked(channels, recorder, authorize=lambda environ, names: "alice")
    client = SSETestClient(app)
    environ = {"REMOTE_ADDR": "192.0.2.7"}
    with client.stream("/?channel=b&channel=a&x=1", environ=environ) as one:
        one.next_event()
        with client.stream("/?channel=a", environ=environ) as two:
            two.next_event()
    first, second = recorder.calls[0][1], recorder.calls[1][1]
    assert (first.user, first.channels, first.address) == ("alice", ("b", "a"), "192.0.2.7")
    assert first.last_event_id is None
    assert "x=1" in first.environ["QUERY_STRING"]
    assert first.id != second.id
    assert len(first.id) == 16
    assert {first, second} == {c for kind, c in recorder.calls if kind == "disconnect"}


# -- exactly once ------------------------------------------------------------------------------


def test_each_hook_runs_once_per_stream_when_clients_leave() -> None:
    channel = Channel()
    recorder = Recorder()
    client = SSETestClient(hooked(channel, recorder, heartbeat=0.05))
    responses = [client.stream("/") for _ in range(5)]
    for response in responses:
        response.next_event()
    assert recorder.count("connect") == 5
    assert recorder.count("disconnect") == 0
    for response in responses:
        response.next_comment(timeout=2)  # a heartbeat: the stream is still going
        response.close()
        response.close()  # closing twice tells the hook once
    wait_until(lambda: recorder.count("disconnect") == 5)
    assert recorder.online == set()
    assert channel.subscriber_count == 0


@pytest.mark.parametrize("ending", ["revoke", "lifetime"])
def test_on_disconnect_runs_once_when_the_server_ends_the_stream(ending: str) -> None:
    channel = Channel()
    recorder = Recorder()
    options: dict[str, object] = {"authorize": lambda environ, names: "bob"}
    if ending == "lifetime":
        options["max_lifetime"] = 0.2
    app = hooked(channel, recorder, **options)
    with SSETestClient(app).stream("/") as response:
        response.next_event()
        if ending == "revoke":
            assert app.revoke(user="bob") == 1
        events = response.read_to_end()
        assert events[-1].type == END_EVENT
    wait_until(lambda: recorder.count("disconnect") == 1)
    assert [kind for kind, _ in recorder.calls] == ["connect", "disconnect"]


@pytest.fixture
def restore_lifecycle() -> Iterator[None]:
    yield
    lifecycle_process.shutting_down = False


@pytest.mark.usefixtures("restore_lifecycle")
def test_on_disconnect_runs_once_for_every_stream_ended_by_shutdown() -> None:
    channel = Channel()
    recorder = Recorder()
    client = SSETestClient(hooked(channel, recorder))
    responses = [client.stream("/") for _ in range(3)]
    for response in responses:
        response.next_event()
    assert wsgisse.shutdown(timeout=5) >= 3
    for response in responses:
        assert response.read_to_end()[-1].type == END_EVENT
        response.close()
    wait_until(lambda: recorder.count("disconnect") == 3)
    assert recorder.count("connect") == 3
    assert recorder.online == set()


def test_no_hook_runs_for_a_head_request_or_a_refused_stream() -> None:
    recorder = Recorder()
    with SSETestClient(hooked(Channel(), recorder)).stream("/", method="HEAD") as head:
        assert head.status_code == 200
    app = hooked(Channel(), recorder, authorize=lambda environ, names: None)
    with SSETestClient(app).stream("/") as refused:
        assert refused.status_code == 401
    capped = hooked(Channel(), recorder, max_connections=1)
    browser = {"Accept": "text/event-stream"}
    with SSETestClient(capped).stream("/", headers=browser) as admitted:
        admitted.next_event()
        with SSETestClient(capped).stream("/", headers=browser) as full:
            assert full.read_to_end()[-1].data == '{"reason":"capacity"}'
    wait_until(lambda: recorder.count("disconnect") == 1)
    assert [kind for kind, _ in recorder.calls] == ["connect", "disconnect"]


# -- failing hooks -----------------------------------------------------------------------------


def failing(connection: Connection) -> ServerSentEvent:
    raise RuntimeError("the state store is down")


@pytest.mark.parametrize(
    ("on_connect", "logged"),
    [
        (failing, "the state store is down"),
        (lambda connection: ServerSentEvent("x", id="7"), "must have no id"),
        (lambda connection: "not an event", "must return None, a ServerSentEvent"),
    ],
)
def test_a_failing_on_connect_refuses_the_stream_with_500_and_a_log_line(
    on_connect: Callable[[Connection], object], logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    channel = Channel()
    disconnects: list[Connection] = []
    app = SSEApp(
        channel,
        on_connect=on_connect,  # type: ignore[arg-type]
        on_disconnect=disconnects.append,
        max_connections_per_client=1,
    )
    with caplog.at_level(logging.ERROR, logger="wsgisse"):
        for _ in range(2):  # the slot was given back: the second is refused the same way
            with SSETestClient(app).stream("/") as response:
                assert response.status == "500 Internal Server Error"
                assert response.read_to_end() == []
    assert channel.subscriber_count == 0
    assert disconnects == []
    assert app.connected == 0
    assert app.stats.snapshot()["refused"] == {"error": 2}
    records = [r for r in caplog.records if "on_connect failed" in r.getMessage()]
    assert len(records) == 2
    assert logged in (records[0].exc_text or "")


def test_a_failing_on_disconnect_is_logged_and_the_cleanup_still_happens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = Channel()

    def on_disconnect(connection: Connection) -> None:
        raise RuntimeError("presence store is down")

    app = SSEApp(channel, on_disconnect=on_disconnect, max_connections_per_client=1)
    client = SSETestClient(app)
    with caplog.at_level(logging.ERROR, logger="wsgisse"):
        with client.stream("/") as response:
            response.next_comment()
        wait_until(lambda: "on_disconnect failed" in caplog.text)
    assert "presence store is down" in caplog.text
    assert channel.subscriber_count == 0
    assert app.connected == 0
    with client.stream("/") as again:  # the per-client slot was released
        again.next_comment()
        channel.publish("still served")
        assert again.next_event().data == "still served"


# -- on real servers ---------------------------------------------------------------------------

HOOKS_APP = "tests.live.hooks_app:app"


def serve_hooks(start_server: StartServer, server_name: str, log: Path) -> ServerProcess:
    factory = WSGI_SERVERS[server_name]
    return start_server(factory(HOOKS_APP, env={"HOOK_LOG": str(log)}))


def hook_lines(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split(" ") for line in log.read_text(encoding="utf-8").splitlines()]


def online(server: ServerProcess) -> list[str]:
    response = requests.get(server.url + "/presence", timeout=10)
    return list(response.json()["online"])


@pytest.mark.parametrize("server_name", ["gunicorn-gevent", "werkzeug-threaded"])
def test_on_real_servers_the_snapshot_precedes_replayed_and_live_events(
    server_name: str, start_server: StartServer, open_sse: OpenSSE, tmp_path: Path
) -> None:
    server = serve_hooks(start_server, server_name, tmp_path / "hooks.log")
    ids = [requests.post(f"{server.url}/publish?data={d}", timeout=10).json()["id"] for d in "abc"]
    stream = open_sse(server.url + "/events?name=ann", last_event_id=ids[0])
    events = stream.events(4)
    assert [(e.type, e.data) for e in events] == [
        ("snapshot", '{"online":["ann"]}'),
        ("message", "b"),
        ("message", "c"),
        ("connecting", "ann"),
    ]
    # Live events from now on: under gunicorn the publish writes them to the socket.
    for data in ("d", "e"):
        requests.post(f"{server.url}/publish?data={data}", timeout=10)
    assert [e.data for e in stream.events(2)] == ["d", "e"]
    second = open_sse(server.url + "/events?name=bob")
    assert json.loads(second.next_event().data) == {"online": ["ann", "bob"]}
    assert stream.next_event().data == "bob"  # ann hears bob connecting


@pytest.mark.parametrize("server_name", ["gunicorn-gevent", "werkzeug-threaded"])
def test_on_real_servers_each_hook_runs_once_per_stream_when_clients_leave(
    server_name: str, start_server: StartServer, open_sse: OpenSSE, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    server = serve_hooks(start_server, server_name, log)
    streams = [open_sse(f"{server.url}/events?name=u{n}") for n in range(4)]
    for stream in streams:
        assert stream.next_event().type == "snapshot"
    assert online(server) == ["u0", "u1", "u2", "u3"]
    for stream in streams[:3]:
        stream.close()
    # The heartbeat (0.2 s) is the write that tells the server each client is gone.
    wait_until(lambda: online(server) == ["u3"], timeout=15)
    lines = hook_lines(log)
    connected = {conn_id for kind, conn_id, _ in lines if kind == "connect"}
    gone = [conn_id for kind, conn_id, _ in lines if kind == "disconnect"]
    assert len(connected) == 4
    assert len(gone) == len(set(gone)) == 3
    assert set(gone) < connected


def test_on_gunicorn_a_stream_with_a_snapshot_keeps_the_fast_path(
    start_server: StartServer, open_sse: OpenSSE, tmp_path: Path
) -> None:
    server = serve_hooks(start_server, "gunicorn-gevent", tmp_path / "hooks.log")
    stream = open_sse(server.url + "/events?name=ann")
    assert [e.type for e in stream.events(2)] == ["snapshot", "connecting"]
    for data in ("d", "e"):
        requests.post(f"{server.url}/publish?data={data}", timeout=10)
    assert [e.data for e in stream.events(2)] == ["d", "e"]
    assert requests.get(server.url + "/presence", timeout=10).json()["direct"] >= 1


def test_on_gunicorn_a_failing_on_connect_answers_500_and_logs_it(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = serve_hooks(start_server, "gunicorn-gevent", tmp_path / "hooks.log")
    response = requests.get(server.url + "/events?fail=1", timeout=10)
    assert response.status_code == 500
    assert response.text == "the stream could not start\n"
    wait_until(lambda: "on_connect failed" in server.output(), timeout=10)
    assert "the snapshot store is down" in server.output()
    assert online(server) == []


def test_on_gunicorn_sigterm_tells_on_disconnect_of_every_stream_exactly_once(
    start_server: StartServer, open_sse: OpenSSE, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    server = serve_hooks(start_server, "gunicorn-gevent", log)
    streams = [open_sse(f"{server.url}/events?name=u{n}") for n in range(5)]
    for stream in streams:
        stream.next_event()
    server.stop(signal.SIGTERM)
    for stream in streams:
        assert stream.read_to_end(timeout=15)[-1].type == END_EVENT
    lines = hook_lines(log)
    connected = sorted(conn_id for kind, conn_id, _ in lines if kind == "connect")
    gone = sorted(conn_id for kind, conn_id, _ in lines if kind == "disconnect")
    assert len(connected) == 5
    assert gone == connected


def test_on_werkzeug_shutdown_tells_on_disconnect_of_every_stream_exactly_once(
    start_server: StartServer, open_sse: OpenSSE, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    server = serve_hooks(start_server, "werkzeug-threaded", log)
    streams = [open_sse(f"{server.url}/events?name=u{n}") for n in range(3)]
    for stream in streams:
        stream.next_event()
    ended = requests.post(server.url + "/shutdown", timeout=15).json()["ended"]
    assert ended == 3
    for stream in streams:
        assert stream.read_to_end(timeout=15)[-1].type == END_EVENT
    wait_until(lambda: online(server) == [], timeout=10)
    lines = hook_lines(log)
    connected = sorted(conn_id for kind, conn_id, _ in lines if kind == "connect")
    gone = sorted(conn_id for kind, conn_id, _ in lines if kind == "disconnect")
    assert len(connected) == 3
    assert gone == connected
