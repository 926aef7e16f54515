"""Streams through the WSGI stacks people run, under gunicorn -k gevent and gevent's server.

The fast path (the publish loop writing to sockets itself) must never corrupt a
response: it engages only where the server carries the stream's bytes unchanged, and
every other stack takes the ordinary path and still delivers every event intact. Each app
is in ``tests/live/middleware_apps.py``.
"""

from __future__ import annotations

import json
import urllib.request
import zlib
from typing import Any

import pytest
from _servers import LIVE_DIR, WSGI_SERVERS, ServerProcess, open_stream

from wsgisse import EventStreamParser, MessageEvent
from wsgisse.testing import wait_until

SERVERS = ["gunicorn-gevent", "gevent-pywsgi"]
EVENTS = 20


def call(server: ServerProcess, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        server.url + path, method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def serve(name: str, app: str) -> ServerProcess:
    return WSGI_SERVERS[name](f"middleware_apps:{app}", pythonpath=[LIVE_DIR])


def datas(body: bytes) -> list[str]:
    return [e.data for e in EventStreamParser().feed(body) if isinstance(e, MessageEvent)]


def received(server: ServerProcess, headers: dict[str, str] | None = None) -> list[str]:
    stream = open_stream(server.url + "/events", headers)
    try:
        wait_until(lambda: call(server, "/stats")["subscribers"] == 1, message="subscribed")
        for n in range(EVENTS):
            call(server, f"/publish?data=e{n}", "POST")
            assert stream.next_event(10).data == f"e{n}"
        return [event.data for event in stream.items if isinstance(event, MessageEvent)]
    finally:
        stream.close()


def direct_writes(server: ServerProcess) -> int:
    return int(call(server, "/stats")["counters"]["direct_writes"])


@pytest.mark.parametrize("server_name", SERVERS)
@pytest.mark.parametrize("app", ["plain", "tagged", "flask_plain", "flask_compress"])
def test_the_fast_path_engages_where_the_server_carries_the_stream_unchanged(
    server_name: str, app: str
) -> None:
    with serve(server_name, app) as server:
        assert received(server) == [f"e{n}" for n in range(EVENTS)]
        assert direct_writes(server) >= EVENTS - 1


def test_bottle_keeps_the_fast_path_under_gunicorn() -> None:
    with serve("gunicorn-gevent", "bottle_plain") as server:
        assert received(server) == [f"e{n}" for n in range(EVENTS)]
        assert direct_writes(server) >= EVENTS - 1


def test_bottle_under_geventss_server_streams_on_the_ordinary_path() -> None:
    # Bottle re-wraps the body it returns, so gevent's handler iterates Bottle's object.
    with serve("gevent-pywsgi", "bottle_plain") as server:
        assert received(server) == [f"e{n}" for n in range(EVENTS)]
        assert direct_writes(server) == 0


@pytest.mark.parametrize("server_name", SERVERS)
@pytest.mark.parametrize("app", ["body_wrapper", "sentry"])
def test_a_wrapper_of_the_body_gets_every_event_on_the_ordinary_path(
    server_name: str, app: str
) -> None:
    with serve(server_name, app) as server:
        assert received(server) == [f"e{n}" for n in range(EVENTS)]
        assert direct_writes(server) == 0


@pytest.mark.parametrize("server_name", SERVERS)
def test_a_streaming_compressor_delivers_every_event_intact(server_name: str) -> None:
    with serve(server_name, "gzip_stream") as server:
        stream = open_stream(server.url + "/events", {"Accept-Encoding": "gzip"})
        try:
            assert stream.headers["Content-Encoding"] == "gzip"
            wait_until(lambda: call(server, "/stats")["subscribers"] == 1, message="subscribed")
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            text = b""
            for n in range(EVENTS):
                call(server, f"/publish?data=e{n}", "POST")
                # Each event must arrive on its own: the compressor flushes every chunk.
                while f"data: e{n}\n".encode() not in text:
                    text += inflate.decompress(stream.read_body(10))
            assert datas(text) == [f"e{n}" for n in range(EVENTS)]
        finally:
            stream.close()
        assert direct_writes(server) == 0


@pytest.mark.parametrize("server_name", SERVERS)
def test_flask_compress_told_to_compress_streams_leaves_them_intact(server_name: str) -> None:
    with serve(server_name, "flask_compress") as server:
        stream = open_stream(server.url + "/events", {"Accept-Encoding": "gzip, deflate, br"})
        try:
            assert "Content-Encoding" not in stream.headers
            wait_until(lambda: call(server, "/stats")["subscribers"] == 1, message="subscribed")
            call(server, "/publish?data=first", "POST")
            assert stream.next_event(10).data == "first"
        finally:
            stream.close()
        # Everything else the app answers is still compressed.
        request = urllib.request.Request(server.url + "/stats", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["Content-Encoding"] == "gzip"
