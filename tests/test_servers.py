"""The core on real servers: gunicorn -k gevent, gevent's WSGIServer, Werkzeug threaded.

Each server serves ``tests/live/core_app.py`` in its own process on a free port; the
tests talk to it over real sockets, as a browser would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import (
    LIVE_DIR,
    WSGI_SERVERS,
    ServerProcess,
    free_port,
    open_stream,
    python_env,
)

from wsgisse import EventStreamParser, MessageEvent
from wsgisse.testing import wait_until

APP = "core_app:app"


def call(server: ServerProcess, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        server.url + path, method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def subscribers(server: ServerProcess) -> int:
    return int(call(server, "/stats")["subscribers"])


def gevent_unpatched(app_ref: str, **options: Any) -> ServerProcess:
    """gevent's WSGIServer in a process that never monkey-patches: threads stay native."""
    port = free_port()
    argv = [sys.executable, str(LIVE_DIR / "run_gevent_unpatched.py"), str(port), app_ref]
    return ServerProcess(argv, port=port, name="gevent-unpatched", env=python_env(**options))


SERVERS = {**WSGI_SERVERS, "gevent-pywsgi-unpatched": gevent_unpatched}


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with SERVERS[request.param](APP, pythonpath=[LIVE_DIR]) as running:
        yield running


def test_a_published_event_reaches_the_stream_with_its_headers(server: ServerProcess) -> None:
    with open_stream(server.url + "/events") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["Cache-Control"] == "no-cache, no-transform"
        wait_until(lambda: subscribers(server) == 1, timeout=10, message="one subscriber")
        call(server, "/publish?data=h%C3%A9llo%0Aw%C3%B6rld%20%F0%9F%8E%89&event=note", "POST")
        event = stream.next_event()
        assert (event.type, event.data) == ("note", "héllo\nwörld 🎉")


def test_nagle_is_turned_off_on_the_servers_socket(server: ServerProcess) -> None:
    assert call(server, "/nodelay") == {"nodelay": 1}


def test_a_reconnect_with_last_event_id_replays_exactly_the_missed_events(
    server: ServerProcess,
) -> None:
    with open_stream(server.url + "/events") as stream:
        wait_until(lambda: subscribers(server) == 1, timeout=10, message="one subscriber")
        call(server, "/publish?count=3", "POST")
        received = stream.events(3)
    last_id = received[-1].last_event_id
    missed = call(server, "/publish?count=5&data=missed", "POST")["ids"]
    with open_stream(server.url + "/events", last_event_id=last_id) as resumed:
        replayed = resumed.events(5)
        assert [event.last_event_id for event in replayed] == missed
        wait_until(lambda: subscribers(server) == 1, timeout=10, message="one subscriber")
        live = call(server, "/publish?data=live", "POST")["ids"]
        assert resumed.next_event().last_event_id == live[0]


def test_a_client_that_disconnects_is_unsubscribed(server: ServerProcess) -> None:
    streams = [open_stream(server.url + "/events") for _ in range(3)]
    try:
        wait_until(lambda: subscribers(server) == 3, timeout=10, message="three subscribers")
        streams[0].close()
        streams[1].close()
        wait_until(lambda: subscribers(server) == 1, timeout=10, message="one subscriber left")
    finally:
        for stream in streams:
            stream.close()
    wait_until(lambda: subscribers(server) == 0, timeout=10, message="no subscriber left")


def test_events_published_from_a_native_os_thread_reach_every_subscriber(
    server: ServerProcess,
) -> None:
    streams = [open_stream(server.url + "/events") for _ in range(5)]
    try:
        wait_until(lambda: subscribers(server) == 5, timeout=10, message="five subscribers")
        call(server, "/publish?count=20&via=thread", "POST")
        for stream in streams:
            assert [event.data for event in stream.events(20)] == [str(n) for n in range(20)]
    finally:
        for stream in streams:
            stream.close()


@pytest.mark.slow
def test_one_gevent_process_delivers_100_events_to_1000_subscribers_in_order() -> None:
    """1,000 real connections to one gevent process; a native thread publishes 100 events."""
    with WSGI_SERVERS["gevent-pywsgi"](
        APP, pythonpath=[LIVE_DIR], env={"WSGISSE_HEARTBEAT": "5"}
    ) as server:
        result = subprocess.run(
            [sys.executable, str(LIVE_DIR / "many_clients.py"), server.url, "1000", "100"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout)
        assert report["clients"] == 1000
        assert report["complete_in_order"] == 1000, report
        wait_until(lambda: subscribers(server) == 0, timeout=20, message="all unsubscribed")


@pytest.mark.parametrize("name", ["gunicorn-gevent", "gevent-pywsgi"])
def test_the_publish_loop_writes_to_parked_streams_itself(name: str) -> None:
    with SERVERS[name](APP, pythonpath=[LIVE_DIR]) as server:
        streams = [open_stream(server.url + "/events") for _ in range(3)]
        try:
            wait_until(lambda: subscribers(server) == 3, timeout=10, message="subscribers")
            for n in range(5):
                call(server, f"/publish?data=d{n}", "POST")
                for stream in streams:
                    assert stream.next_event().data == f"d{n}"
            assert call(server, "/stats")["counters"]["direct_writes"] >= 12
        finally:
            for stream in streams:
                stream.close()


def test_a_slow_reader_whose_socket_fills_still_gets_every_event_intact() -> None:
    """The publish loop sends part of a frame, and the stream's greenlet the rest."""
    with SERVERS["gunicorn-gevent"](APP, pythonpath=[LIVE_DIR]) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", server.port))
        with sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_until(lambda: subscribers(server) == 1, timeout=10, message="subscriber")
            # More than loopback's autotuned send buffer (4 MiB) holds: the loop's
            # non-blocking send must come up short at least once.
            call(server, "/publish?count=100&size=60000", "POST")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            raw = head.split(b"\r\n\r\n", 1)[1]
            parser, received = EventStreamParser(), []
            while len(received) < 100:
                time.sleep(0.0005)  # a slow reader: the server's socket buffer fills
                chunk = sock.recv(65536)
                assert chunk, f"closed after {len(received)} events"
                data, raw = dechunk(raw + chunk)
                received += [e for e in parser.feed(data) if isinstance(e, MessageEvent)]
        assert [len(event.data) for event in received] == [60000] * 100
        assert len({event.last_event_id for event in received}) == 100
        assert call(server, "/stats")["counters"]["direct_writes"] >= 1


def dechunk(raw: bytes) -> tuple[bytes, bytes]:
    """The data of the complete chunks in ``raw``, and what is left."""
    data = b""
    while (line_end := raw.find(b"\r\n")) >= 0:
        size = int(raw[:line_end], 16)
        if len(raw) < line_end + 4 + size:
            break
        data += raw[line_end + 2 : line_end + 2 + size]
        raw = raw[line_end + 4 + size :]
    return data, raw


def test_an_http_1_0_client_gets_an_unchunked_stream_from_the_publish_loop() -> None:
    with SERVERS["gevent-pywsgi"](APP, pythonpath=[LIVE_DIR]) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /events HTTP/1.0\r\n\r\n")
            wait_until(lambda: subscribers(server) == 1, timeout=10, message="subscriber")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert b"chunked" not in head.lower()
            body = head.split(b"\r\n\r\n", 1)[1]
            call(server, "/publish?data=plain", "POST")
            parser = EventStreamParser()
            events = [e for e in parser.feed(body) if isinstance(e, MessageEvent)]
            while not events:
                events += [e for e in parser.feed(sock.recv(4096)) if isinstance(e, MessageEvent)]
            assert events[0].data == "plain"
        assert call(server, "/stats")["counters"]["direct_writes"] >= 1


@pytest.mark.parametrize("name", sorted(WSGI_SERVERS))
def test_clients_that_hang_up_are_noticed_within_about_a_second(name: str) -> None:
    # The heartbeat (30 s) would notice them only at its second write, a minute later.
    env = {"WSGISSE_HEARTBEAT": "30"}
    with SERVERS[name](APP, pythonpath=[LIVE_DIR], env=env) as server:
        streams = [open_stream(server.url + "/events") for _ in range(35)]
        try:
            wait_until(lambda: subscribers(server) == 35, timeout=20, message="subscribers")
        finally:
            for stream in streams:
                stream.close()
        started = time.monotonic()
        wait_until(lambda: subscribers(server) == 0, timeout=10, message="all noticed")
        assert time.monotonic() - started < 5
        assert call(server, "/stats")["hangups"] == 35
