"""The test infrastructure itself: servers, the stream client, redis, Chromium, packaging.

Each fixture is shown working against the real thing, and each failure path it promises
(an early exit, a hang, a server that ignores SIGTERM) is shown failing as it should.
"""

from __future__ import annotations

import email
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import redis
from _browser import chromium_executable, start_event_source, wait_for_js
from _servers import (
    REPO_ROOT,
    EventStream,
    ProgramMissingError,
    RedisServer,
    ServerProcess,
    ServerStartError,
    StreamEndedError,
    find_program,
    free_port,
    self_signed_certificate,
)
from playwright.sync_api import Page

import wsgisse
from wsgisse._parser import Comment

APP = "tests.live.apps:stream_app"

Serve = Callable[..., ServerProcess]
OpenSSE = Callable[..., EventStream]


def _gone(pids: list[int]) -> bool:
    """Whether none of ``pids`` is a live process (a zombie is dead)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def _read_items_forever(stream: EventStream) -> None:
    while True:
        stream.next_item(timeout=10)


def _python_server(code: str, *, port: int, start_timeout: float = 20.0) -> ServerProcess:
    return ServerProcess(
        [sys.executable, "-c", code], port=port, name="inline", start_timeout=start_timeout
    )


# -- ports and programs ----------------------------------------------------------------------


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_missing_program_is_an_error_that_names_its_package() -> None:
    with pytest.raises(ProgramMissingError, match="apt-get install some-package"):
        find_program("wsgisse-no-such-program", package="some-package")


def test_a_missing_chromium_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSGISSE_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(ProgramMissingError, match="apt-get install chromium"):
        chromium_executable()


# -- the three WSGI servers and the stream client --------------------------------------------


def test_each_wsgi_server_streams_an_event(serve_wsgi: Serve, open_sse: OpenSSE) -> None:
    server = serve_wsgi(APP)
    stream = open_sse(server.url + "/events")
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    event = stream.next_event(timeout=10)
    assert (event.type, event.data, event.last_event_id) == ("message", "hi", "1")
    # Each server streams HTTP/1.1 chunks; the first one is the whole event.
    assert stream.chunk_sizes[0] == len(b"id: 1\ndata: hi\n\n")


def test_each_wsgi_server_stops_cleanly_with_a_stream_open(
    serve_wsgi: Serve, open_sse: OpenSSE
) -> None:
    server = serve_wsgi(APP)
    stream = open_sse(server.url + "/events")
    stream.next_event(timeout=10)
    members = [p.pid for p in server.group_members()]
    started = time.monotonic()
    # Exit status 0: the server shut down on SIGTERM by itself, without SIGKILL.
    assert server.stop() == 0, server.output_tail()
    assert time.monotonic() - started < 8
    assert _gone(members)


def test_the_stream_client_reads_a_body_with_a_content_length(
    serve_werkzeug: Serve, open_sse: OpenSSE
) -> None:
    stream = open_sse(serve_werkzeug(APP).url + "/fixed")
    events = stream.read_to_end(timeout=10)
    assert [(e.data, e.last_event_id) for e in events] == [("one", "a"), ("two", "b")]
    assert stream.ended
    assert not stream.truncated


def test_the_stream_client_sees_a_chunked_stream_end(
    serve_gunicorn: Serve, open_sse: OpenSSE
) -> None:
    stream = open_sse(serve_gunicorn(APP).url + "/events?count=3&hold=0")
    events = stream.read_to_end(timeout=10)
    assert [e.last_event_id for e in events] == ["1", "2", "3"]
    assert stream.ended
    assert stream.chunk_sizes[-1] == 0  # the last-chunk marker
    with pytest.raises(StreamEndedError):
        stream.next_event(timeout=1)


def test_a_read_that_times_out_leaves_the_stream_readable(
    serve_gevent: Serve, open_sse: OpenSSE
) -> None:
    stream = open_sse(serve_gevent(APP).url + "/events?count=2&interval=1.0")
    assert stream.next_event(timeout=10).last_event_id == "1"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        stream.next_event(timeout=0.2)
    assert 0.15 < time.monotonic() - started < 0.9
    assert stream.next_event(timeout=10).last_event_id == "2"
    assert stream.last_event_id == "2"


def test_the_stream_client_sees_comments_as_items(serve_gevent: Serve, open_sse: OpenSSE) -> None:
    stream = open_sse(serve_gevent(APP).url + "/events")
    stream.next_event(timeout=10)
    comment = stream.next_item(timeout=10)
    assert isinstance(comment, Comment)
    assert comment.text == "keep-alive"


def test_the_stream_client_reads_https_and_verifies_the_certificate(
    serve_gevent: Serve, open_sse: OpenSSE, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = serve_gevent(APP, tls=(cert, key))
    assert server.url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(cert))
    stream = open_sse(server.url + "/events", ssl_context=trusting)
    assert stream.next_event(timeout=10).data == "hi"
    with pytest.raises(ssl.SSLCertVerificationError):
        open_sse(server.url + "/events")  # the system's trust store has no such CA


def test_a_server_killed_mid_stream_ends_the_stream_truncated(
    serve_gevent: Serve, open_sse: OpenSSE
) -> None:
    server = serve_gevent(APP)
    stream = open_sse(server.url + "/events")
    stream.next_event(timeout=10)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    with pytest.raises(StreamEndedError):
        _read_items_forever(stream)
    assert stream.truncated


# -- ServerProcess's failure paths -------------------------------------------------------------


def test_a_server_that_exits_at_start_fails_with_its_output() -> None:
    server = _python_server("import sys; print('boom'); sys.exit(3)", port=free_port())
    try:
        with pytest.raises(ServerStartError, match=r"(?s)exited with status 3.*boom"):
            server.start()
        assert not server.running
        assert server.returncode == 3
    finally:
        server.close()


def test_a_server_that_never_listens_times_out_and_is_killed() -> None:
    server = _python_server("import time; time.sleep(60)", port=free_port(), start_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(ServerStartError, match="not ready"):
            server.start()
        assert time.monotonic() - started < 5
        assert not server.running
        assert server.returncode == -signal.SIGKILL
    finally:
        server.close()


_LISTEN = """
import signal, socket, subprocess, sys, time
if {ignore_term}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", {port}))
sock.listen()
print("child", child.pid, flush=True)
time.sleep(60)
"""


def _wait_for_members(server: ServerProcess, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while len(members := server.group_members()) < count:
        assert time.monotonic() < deadline, f"{len(members)} processes, not {count}"
        time.sleep(0.05)
    return [p.pid for p in members]


def test_stop_kills_a_server_that_ignores_sigterm_and_its_whole_group() -> None:
    port = free_port()
    with _python_server(_LISTEN.format(ignore_term=True, port=port), port=port) as server:
        pids = _wait_for_members(server, 2)
        started = time.monotonic()
        assert server.stop(timeout=0.5) == -signal.SIGKILL
        assert time.monotonic() - started < 3
        assert _gone(pids)
        assert server.group_members() == []


def test_stop_kills_what_a_server_leaves_behind_in_its_group() -> None:
    port = free_port()
    with _python_server(_LISTEN.format(ignore_term=False, port=port), port=port) as server:
        pids = _wait_for_members(server, 2)
        assert server.stop() == -signal.SIGTERM
        assert _gone(pids)


def test_gunicorn_workers_stop_with_their_master(serve_gunicorn: Serve) -> None:
    server = serve_gunicorn(APP, workers=2)
    pids = _wait_for_members(server, 3)
    assert server.stop() == 0
    assert _gone(pids)


# -- redis -----------------------------------------------------------------------------------


def test_redis_server_answers_and_restarts_on_the_same_port(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        assert client.ping()
        client.set("key", "value")
        port = redis_server.port
        redis_server.stop()
        assert not redis_server.ping()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.start()
        assert redis_server.port == port
        assert client.ping()  # the client reconnects to the same address
        assert client.get("key") is None  # nothing was kept on disk
    finally:
        client.close()


# -- Chromium --------------------------------------------------------------------------------


def test_chromium_runs_a_live_page_whose_event_source_receives_events(
    serve_gevent: Serve, browser_page: Page
) -> None:
    server = serve_gevent(APP)
    browser_page.goto(server.url + "/?count=3")
    received = wait_for_js(
        browser_page,
        "window.received.length >= 3 && window.received",
        show="window.received",
    )
    assert [(e["data"], e["lastEventId"]) for e in received[:3]] == [
        ("hi", "1"),
        ("hi", "2"),
        ("hi", "3"),
    ]
    assert browser_page.evaluate("window.opened") >= 1
    assert browser_page.text_content("#status") == "open"


def test_start_event_source_records_events_from_each_server(
    serve_wsgi: Serve, browser_page: Page
) -> None:
    server = serve_wsgi(APP)
    browser_page.goto(server.url + "/?count=0")
    start_event_source(browser_page, "/events?count=2")
    received = wait_for_js(browser_page, "window.sse.received.length >= 2 && window.sse.received")
    assert [e["lastEventId"] for e in received] == ["1", "2"]
    assert browser_page.evaluate("window.sse.opened") == 1


def test_wait_for_js_fails_with_the_page_state_and_console(browser_page: Page) -> None:
    browser_page.set_content("<script>console.log('hello from the page')</script>")
    with pytest.raises(AssertionError, match=r"(?s)window.never.*41 \+ 1 = 42.*hello from"):
        wait_for_js(browser_page, "window.never", timeout=0.3, show="41 + 1")


# -- packaging -------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_wheel_is_typed_versioned_and_holds_only_the_package(tmp_path: Path) -> None:
    # Build from a copy, so that the build leaves nothing (build/, *.egg-info) in the tree.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "setup.py", "pyproject.toml", "MANIFEST.in", "LICENSE"):
        shutil.copy(REPO_ROOT / name, source / name)
    if (REPO_ROOT / "README.rst").exists():
        shutil.copy(REPO_ROOT / "README.rst", source / "README.rst")
    shutil.copytree(
        REPO_ROOT / "wsgisse",
        source / "wsgisse",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    (wheel,) = (tmp_path / "dist").glob("wsgisse-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(metadata_name))
    assert "wsgisse/py.typed" in names
    assert "wsgisse/__init__.py" in names
    assert {name.split("/")[0] for name in names} == {
        "wsgisse",
        f"wsgisse-{wsgisse.__version__}.dist-info",
    }
    assert metadata["Version"] == wsgisse.__version__
    assert metadata["Requires-Python"] == ">=3.10"
    # No dependency outside an extra: the core is pure standard library.
    assert all("extra ==" in req for req in metadata.get_all("Requires-Dist", []))
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])
