"""Streams the server has let go of (``wsgisse/_released.py``), under a real gunicorn -k
gevent and a real gevent ``WSGIServer``.

Once the fast path writes a stream's events itself, the stream takes the connection over
from the server's handler, whose greenlet then ends: an idle stream holds no greenlet. What
the handler's greenlet did (heartbeats, the end of the stream's life, a client that stops
reading, a client that leaves, the last chunk) is the stream's own from then on.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import ServerProcess, gevent_server, gunicorn_gevent, open_stream

from wsgisse._parser import Comment, EventStreamParser, MessageEvent
from wsgisse.testing import wait_until

APP = "tests.live.core_app:app"


def _stats(server: ServerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + "/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
        return stats


def _publish(server: ServerProcess, query: str) -> list[str]:
    request = urllib.request.Request(server.url + "/publish?" + query, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        ids: list[str] = json.load(response)["ids"]
        return ids


SERVERS = {"gunicorn": gunicorn_gevent, "gevent": gevent_server}


@pytest.fixture(params=sorted(SERVERS))
def server_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def server(request: pytest.FixtureRequest, server_kind: str) -> Iterator[ServerProcess]:
    env = getattr(request, "param", {})
    with SERVERS[server_kind](APP, env=env) as running:
        yield running


def test_idle_streams_hold_no_greenlet_and_get_every_event(server: ServerProcess) -> None:
    before = _stats(server)["greenlets"]
    streams = [open_stream(server.url + "/events") for _ in range(40)]
    try:
        wait_until(lambda: _stats(server)["subscribers"] == 40, 10, "40 subscribers")
        # gunicorn's handler greenlets have ended: 40 parked streams would be 40 more.
        assert _stats(server)["greenlets"] - before < 10
        _publish(server, "count=20")
        for stream in streams:
            assert [event.data for event in stream.events(20)] == [str(n) for n in range(20)]
    finally:
        for stream in streams:
            stream.close()
    wait_until(lambda: _stats(server)["subscribers"] == 0, 10, "the streams' end")
    assert "Traceback" not in server.output()
    assert "Socket error" not in server.output()


@pytest.mark.parametrize("server", [{"WSGISSE_HEARTBEAT": "0.2"}], indirect=True)
def test_a_released_stream_sends_heartbeats(server: ServerProcess) -> None:
    with open_stream(server.url + "/events") as stream:
        wait_until(lambda: _stats(server)["subscribers"] == 1, 10, "the subscriber")
        heartbeats = 0
        deadline = time.monotonic() + 10
        while heartbeats < 3 and time.monotonic() < deadline:
            if isinstance(stream.next_item(timeout=5), Comment):
                heartbeats += 1
        assert heartbeats == 3
        _publish(server, "data=after")
        assert stream.next_event(timeout=5).data == "after"


@pytest.mark.parametrize(
    "server", [{"WSGISSE_HEARTBEAT": "0.2", "WSGISSE_MAX_LIFETIME": "1"}], indirect=True
)
def test_the_end_of_life_sends_the_farewell_the_last_chunk_and_closes(
    server: ServerProcess,
) -> None:
    with open_stream(server.url + "/events") as stream:
        events = stream.read_to_end(timeout=10)
        assert stream.ended  # The chunked body's last chunk came: a complete response.
    assert events[-1].type == "wsgisse-end"
    assert json.loads(events[-1].data) == {"reason": "lifetime"}
    wait_until(lambda: _stats(server)["subscribers"] == 0, 10, "the stream's end")


def test_a_client_that_stops_reading_gets_every_event_once_it_reads(
    server: ServerProcess,
) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    try:
        client.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        wait_until(lambda: _stats(server)["subscribers"] == 1, 10, "the subscriber")
        # About 3 MB: far more than the kernel buffers of both sides hold.
        _publish(server, "count=3000&size=1000")
        client.settimeout(10)
        parser = EventStreamParser()
        received: list[MessageEvent] = []
        raw = b""
        while len(received) < 3000:
            chunk = client.recv(65536)
            assert chunk, "the server closed the stream"
            raw += chunk
            body, raw = _dechunk(raw)
            received += [item for item in parser.feed(body) if isinstance(item, MessageEvent)]
        stamps = [float(event.data.split()[0]) for event in received]
        assert stamps == sorted(stamps)
        assert len(received) == 3000
    finally:
        client.close()


def _dechunk(raw: bytes) -> tuple[bytes, bytes]:
    """The bytes of the complete chunks at the start of ``raw`` (after the head), and the rest."""
    if b"\r\n\r\n" in raw and raw.startswith(b"HTTP/"):
        raw = raw.split(b"\r\n\r\n", 1)[1]
    body = b""
    while True:
        line_end = raw.find(b"\r\n")
        if line_end < 0:
            return body, raw
        size = int(raw[:line_end], 16)
        if len(raw) < line_end + 4 + size:
            return body, raw
        body += raw[line_end + 2 : line_end + 2 + size]
        raw = raw[line_end + 4 + size :]


def test_a_client_that_leaves_frees_its_descriptor(server: ServerProcess) -> None:
    before = _stats(server)
    streams = [open_stream(server.url + "/events") for _ in range(20)]
    wait_until(lambda: _stats(server)["subscribers"] == 20, 10, "20 subscribers")
    assert _stats(server)["fds"] >= before["fds"] + 20
    for stream in streams:
        stream.close()
    # The hang-up watch notices each, and the stream closes the connection it took over.
    wait_until(lambda: _stats(server)["subscribers"] == 0, 10, "the hang-ups")
    wait_until(lambda: _stats(server)["fds"] <= before["fds"] + 2, 10, "the descriptors' close")
    assert _stats(server)["hangups"] - before["hangups"] >= 20


def test_released_streams_leave_gunicorns_connection_pool() -> None:
    """gunicorn's --worker-connections caps the requests being handled, not the streams."""
    with gunicorn_gevent(APP, extra_args=["--worker-connections", "10"]) as server:
        streams = [open_stream(server.url + "/events") for _ in range(30)]
        try:
            wait_until(lambda: _stats(server)["subscribers"] == 30, 20, "30 subscribers")
            _publish(server, "data=everyone")
            assert all(stream.next_event(timeout=10).data == "everyone" for stream in streams)
        finally:
            for stream in streams:
                stream.close()
