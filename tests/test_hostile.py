"""Hostile, broken, slow and frozen clients: a clear answer or a clean drop, never a hang."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from _servers import LIVE_DIR, WSGI_SERVERS, ServerProcess, python_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgisse import Channel, SSEApp

WRITE_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"WSGISSE_WRITE_TIMEOUT": str(WRITE_TIMEOUT), "WSGISSE_HEARTBEAT": "1"}
    with WSGI_SERVERS["gunicorn-gevent"]("core_app:app", pythonpath=[LIVE_DIR], env=env) as running:
        yield running


def raw_request(server: ServerProcess, request: bytes, read: int = 4096) -> bytes:
    """Send raw bytes; return what the server answers first (bounded)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(read)


@pytest.mark.slow
def test_a_frozen_client_is_dropped_without_delaying_100_readers(server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, str(LIVE_DIR / "frozen_client.py"), server.url, "100", "400", "8192"],
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env([LIVE_DIR]),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    # The frozen client's buffers fill within a second or two, then the write deadline.
    assert report["frozen_dropped_after"] is not None
    assert report["frozen_dropped_after"] < WRITE_TIMEOUT + 4.0
    assert all(reader["received"] == 400 for reader in report["readers"])
    # The stated bound: the readers never waited on the frozen one (a blocked write would
    # have held them for the whole write timeout).
    assert max(reader["worst_delay"] for reader in report["readers"]) < 1.5


def test_a_body_on_get_is_ignored_and_the_stream_served(server: ServerProcess) -> None:
    answer = raw_request(
        server,
        b"GET /events HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"text/event-stream" in answer


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"Last-Event-ID: " + b"9" * 2000, b"400"),
        (b"Last-Event-ID: \xff\xfe", b"400"),
        (b"Last-Event-ID: caf\xc3", b"400"),
    ],
    ids=["too-long", "not-utf8", "truncated-utf8"],
)
def test_hostile_last_event_ids_get_400_from_a_real_server(
    server: ServerProcess, header: bytes, status: bytes
) -> None:
    answer = raw_request(server, b"GET /events HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
    assert answer.split(b" ", 2)[1] == status
    assert b"Traceback" not in answer


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"PATCH"])
def test_wrong_methods_get_405_from_a_real_server(server: ServerProcess, method: bytes) -> None:
    answer = raw_request(
        server, method + b" /events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 405")
    assert b"Allow: GET, HEAD" in answer


# -- any request at all ---------------------------------------------------------------------

_TEXT = st.text(max_size=300)
_LATIN1 = st.binary(max_size=300).map(lambda raw: raw.decode("latin-1"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "PUT", "get", "BREW"]),
    query=st.one_of(_TEXT, _LATIN1, st.lists(_TEXT, max_size=20).map("&".join)),
    last_event_id=st.one_of(st.none(), _LATIN1),
    origin=st.one_of(st.none(), _LATIN1),
    accept=st.one_of(st.none(), st.just("text/event-stream"), _LATIN1),
)
def test_no_request_makes_the_endpoint_raise_or_hang(
    method: str, query: str, last_event_id: str | None, origin: str | None, accept: str | None
) -> None:
    channels = {"a": Channel("a"), "b": Channel("b")}
    app = SSEApp(channels, max_connections=1)
    headers = {"HTTP_LAST_EVENT_ID": last_event_id, "HTTP_ORIGIN": origin, "HTTP_ACCEPT": accept}
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/events",
        "QUERY_STRING": query,
        "SERVER_SOFTWARE": "fuzz",
        **{key: value for key, value in headers.items() if value is not None},
    }
    answered: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answered.append(status)

    body = app(environ, start_response)
    try:
        assert len(answered) == 1
        code = int(answered[0][:3])
        assert code in (200, 204, 400, 401, 403, 404, 405, 503)
        if code == 200 and method.upper() == "GET":
            assert next(iter(body)).startswith(b": wsgisse")
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    assert all(channel.subscriber_count == 0 for channel in channels.values())
