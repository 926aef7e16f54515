"""wsgisse on the other servers, under Werkzeug's reloader, and behind compression.

Each test runs the real thing in a subprocess on a free port: waitress (threads), uWSGI
in gevent mode (built by ``pip install uwsgi``), Werkzeug's reloader, gevent's
``WSGIServer`` stopped gracefully, and Flask-Compress and Paste's gzip middleware in
front of a stream. What they show is written up in ``docs/deployment.rst``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _servers import (
    LIVE_DIR,
    ServerProcess,
    free_port,
    gevent_server,
    open_stream,
    python_env,
    werkzeug_threaded,
)
from conftest import StartServer

from wsgisse import Comment
from wsgisse.testing import wait_until

# What a browser offers (Chromium's Accept-Encoding).
BROWSER_ENCODINGS = "gzip, deflate, br, zstd"
# An event must reach the client within this, once published.
PROMPT = 1.0
# core_app's heartbeat is 0.2 s: a gone client is noticed well within this.
NOTICED = 5.0
UWSGI = Path(sys.executable).parent / "uwsgi"

requires_uwsgi = pytest.mark.skipif(
    not UWSGI.exists(), reason="uwsgi is not installed: make dev (requirements/dev.txt)"
)


def get(server: ServerProcess, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=5) as response:
        return json.load(response)


def post(server: ServerProcess, path: str) -> Any:
    request = urllib.request.Request(server.url + path, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def subscribers(server: ServerProcess) -> int:
    count: int = get(server, "/stats")["subscribers"]
    return count


def waitress(app_ref: str, *, threads: int = 8) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, str(LIVE_DIR / "run_waitress.py"), "--port", str(port)]
    argv += ["--threads", str(threads), app_ref]
    return ServerProcess(argv, port=port, name="waitress", env=python_env([LIVE_DIR]))


def uwsgi(app_ref: str, *options: str, router: bool = False) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, str(LIVE_DIR / "run_uwsgi.py"), "--port", str(port)]
    argv += [*(["--router"] if router else []), *options, app_ref]
    return ServerProcess(argv, port=port, name="uwsgi", env=python_env([LIVE_DIR]))


def check_stream_replay_and_cleanup(server: ServerProcess) -> None:
    """An event arrives promptly, Last-Event-ID replays, a gone client is let go."""
    stream = open_stream(server.url + "/events")
    try:
        assert stream.status == 200
        assert stream.next_item(PROMPT) == Comment("wsgisse")
        for _ in range(3):
            published = time.monotonic()
            post(server, "/publish?data=now")
            assert stream.next_event(PROMPT).data == "now"
            assert time.monotonic() - published < PROMPT
        ids = post(server, "/publish?count=3")["ids"]
        assert [event.data for event in stream.events(3, PROMPT)] == ["0", "1", "2"]
        assert subscribers(server) == 1
    finally:
        stream.close()
    wait_until(lambda: subscribers(server) == 0, timeout=NOTICED, message="the unsubscribe")
    with open_stream(server.url + "/events", last_event_id=ids[0]) as resumed:
        assert [event.data for event in resumed.events(2, PROMPT)] == ["1", "2"]


# -- waitress ------------------------------------------------------------------------------


def test_waitress_streams_events_at_once_replays_and_lets_a_gone_client_go(
    start_server: StartServer,
) -> None:
    server = start_server(waitress("core_app:app"))
    check_stream_replay_and_cleanup(server)
    with open_stream(server.url + "/events") as stream:
        # waitress chunks the stream itself and sends each write at once (send_bytes=1).
        assert stream.headers["Transfer-Encoding"] == "chunked"


def test_on_waitress_a_stream_beyond_the_threads_waits_for_one_to_free(
    start_server: StartServer,
) -> None:
    server = start_server(waitress("core_app:app", threads=2))
    first, second = open_stream(server.url + "/events"), open_stream(server.url + "/events")
    try:
        # Both threads hold a stream: a third request waits in waitress' queue.
        with pytest.raises(TimeoutError):
            open_stream(server.url + "/events", timeout=1.0)
        first.close()
        with open_stream(server.url + "/events", timeout=NOTICED) as third:
            assert third.status == 200
    finally:
        first.close()
        second.close()


def test_on_waitress_a_cap_below_the_threads_keeps_a_thread_for_other_requests(
    start_server: StartServer,
) -> None:
    # compat_app:capped allows 2 streams: SSEApp(max_connections=threads - 1).
    server = start_server(waitress("compat_app:capped", threads=3))
    streams = [open_stream(server.url + "/events") for _ in range(2)]
    try:
        with open_stream(server.url + "/events") as refused:
            farewell = refused.read_to_end(PROMPT)
        assert farewell[-1].type == "wsgisse-end"
        assert json.loads(farewell[-1].data) == {"reason": "capacity"}
        assert subscribers(server) == 2  # and this request found a thread
    finally:
        for stream in streams:
            stream.close()


def test_waitress_stopped_by_sigterm_gives_every_stream_its_farewell(
    start_server: StartServer,
) -> None:
    server = start_server(waitress("core_app:app"))
    streams = [open_stream(server.url + "/events") for _ in range(5)]
    try:
        wait_until(lambda: subscribers(server) == 5, timeout=NOTICED)
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        for stream in streams:
            last = stream.read_to_end(NOTICED)[-1]
            assert (last.type, json.loads(last.data)) == ("wsgisse-end", {"reason": "shutdown"})
        assert server.stop(timeout=NOTICED) == 0
        assert time.monotonic() - started < NOTICED
    finally:
        for stream in streams:
            stream.close()


# -- uWSGI, gevent mode --------------------------------------------------------------------


@requires_uwsgi
@pytest.mark.parametrize("router", [False, True], ids=["http-socket", "http-router"])
def test_uwsgi_gevent_streams_events_at_once_replays_and_lets_a_gone_client_go(
    start_server: StartServer, router: bool
) -> None:
    server = start_server(uwsgi("core_app:app", router=router))
    check_stream_replay_and_cleanup(server)
    with open_stream(server.url + "/events") as stream:
        if router:
            # --http --http-keepalive --http-auto-chunked: the router chunks.
            assert stream.headers["Transfer-Encoding"] == "chunked"
        else:
            # --http-socket neither chunks nor says Connection: close: the body ends
            # when the connection does, which suits a stream (and EventSource) well.
            assert "Transfer-Encoding" not in stream.headers
            assert "Content-Length" not in stream.headers


@requires_uwsgi
@pytest.mark.slow
def test_uwsgi_harakiri_kills_a_quiet_worker_with_every_stream_it_holds(
    start_server: StartServer,
) -> None:
    server = start_server(uwsgi("core_app:app", "--harakiri=2"))
    pid = get(server, "/stats")["pid"]
    # In gevent mode harakiri is one timer per worker, armed when a request starts and
    # disarmed when any request ends: no request ends after these, so it fires.
    started = time.monotonic()
    streams = [open_stream(server.url + "/events") for _ in range(3)]
    try:
        for stream in streams:
            # Cut without the farewell: the worker was SIGKILLed.
            assert [event.type for event in stream.read_to_end(10)] == []
        # uWSGI counts harakiri in whole seconds, and its master checks once a second.
        assert 1 <= time.monotonic() - started < 6
        assert get(server, "/stats")["pid"] != pid
    finally:
        for stream in streams:
            stream.close()
    assert "HARAKIRI ON WORKER" in server.output()


@requires_uwsgi
def test_uwsgi_stop_cuts_streams_without_a_farewell(start_server: StartServer) -> None:
    server = start_server(uwsgi("core_app:app"))
    streams = [open_stream(server.url + "/events") for _ in range(3)]
    try:
        wait_until(lambda: subscribers(server) == 3, timeout=NOTICED)
        os.kill(server.pid, signal.SIGTERM)  # --die-on-term: stop
        for stream in streams:
            assert [event.type for event in stream.read_to_end(NOTICED)] == []
    finally:
        for stream in streams:
            stream.close()


# -- Werkzeug's reloader -------------------------------------------------------------------


RELOADING_SERVER = """\
import sys

from werkzeug.serving import run_simple

from core_app import app

if __name__ == "__main__":
    run_simple(
        "127.0.0.1", int(sys.argv[1]), app, threaded=True, use_reloader=True,
        reloader_interval=0.1,
    )
"""


@pytest.mark.slow
def test_the_werkzeug_reloader_says_farewell_and_the_client_resumes_on_the_new_child(
    start_server: StartServer, tmp_path: Path
) -> None:
    script = tmp_path / "serve_reloading.py"
    script.write_text(textwrap.dedent(RELOADING_SERVER))
    port = free_port()
    server = start_server(
        ServerProcess(
            [sys.executable, str(script), str(port)],
            port=port,
            name="werkzeug-reloader",
            env=python_env([LIVE_DIR]),
            cwd=tmp_path,
        )
    )
    old_child = get(server, "/stats")["pid"]
    streams = [open_stream(server.url + "/events") for _ in range(3)]
    try:
        post(server, "/publish?data=before")
        for stream in streams:
            assert stream.next_event(PROMPT).data == "before"
        changed = time.time() + 10
        os.utime(script, (changed, changed))  # as an editor saving the file would
        for stream in streams:
            events = stream.read_to_end(NOTICED)
            assert [(e.type, json.loads(e.data)) for e in events] == [
                ("wsgisse-end", {"reason": "shutdown"})
            ]
        # The parent kept the listening socket: the client comes back to the new child,
        # whose memory channel is new, and is told so.
        with open_stream(
            server.url + "/events", last_event_id=streams[0].last_event_id, timeout=NOTICED
        ) as resumed:
            assert resumed.next_event(PROMPT).type == "wsgisse-history-lost"
            assert resumed.headers["X-Worker-Pid"] != str(old_child)
    finally:
        for stream in streams:
            stream.close()


# -- gevent's WSGIServer, stopped gracefully -----------------------------------------------


@pytest.mark.slow
def test_gevent_graceful_stop_says_farewell_to_50_streams_and_exits_at_once(
    start_server: StartServer,
) -> None:
    server = gevent_server("core_app:app", pythonpath=[LIVE_DIR])
    server.argv.insert(2, "--graceful")  # after run_gevent.py; the factory has no option
    start_server(server)
    streams = [open_stream(server.url + "/events") for _ in range(50)]
    try:
        wait_until(lambda: subscribers(server) == 50, timeout=NOTICED)
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        for stream in streams:
            last = stream.read_to_end(NOTICED)[-1]
            assert (last.type, json.loads(last.data)) == ("wsgisse-end", {"reason": "shutdown"})
        assert server.stop(timeout=NOTICED) == 0
        took = time.monotonic() - started
    finally:
        for stream in streams:
            stream.close()
    assert took < 3.0, f"the server took {took:.1f} s to exit"


# -- compression middleware ----------------------------------------------------------------


def serve_compat(start_server: StartServer, app: str) -> ServerProcess:
    return start_server(werkzeug_threaded(f"compat_app:{app}", pythonpath=[LIVE_DIR]))


def test_flask_compress_with_its_defaults_leaves_the_stream_alone(
    start_server: StartServer,
) -> None:
    server = serve_compat(start_server, "flask_plain")
    page = urllib.request.Request(server.url + "/page", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(page, timeout=5) as response:
        assert response.headers["Content-Encoding"] == "gzip"  # Flask-Compress is on
    with open_stream(server.url + "/events", {"Accept-Encoding": BROWSER_ENCODINGS}) as stream:
        assert stream.headers.get("Content-Encoding") is None
        post(server, "/publish?data=now")
        assert stream.next_event(PROMPT).data == "now"


@pytest.mark.parametrize("offered", [BROWSER_ENCODINGS, "gzip"], ids=["zstd-br-deflate", "gzip"])
def test_flask_compress_told_to_compress_event_streams_leaves_them_intact(
    start_server: StartServer, offered: str
) -> None:
    # Unhelped, Flask-Compress would withhold the whole stream (zstd holds 128 KiB before
    # it emits a byte): the stream declines compression, which it honours.
    server = serve_compat(start_server, "flask_compressing")
    with open_stream(server.url + "/events", {"Accept-Encoding": offered}) as stream:
        assert stream.headers.get("Content-Encoding") is None
        post(server, "/publish?data=now")
        assert stream.next_event(PROMPT).data == "now"


def test_paste_gzip_middleware_around_a_stream_holds_it_forever(
    start_server: StartServer,
) -> None:
    server = serve_compat(start_server, "gzip_around_stream")
    # It reads the whole body before it calls start_response, whatever the headers say.
    with pytest.raises(TimeoutError):
        open_stream(server.url + "/events", {"Accept-Encoding": "gzip"}, timeout=1.5)
    # The stream is subscribed and its heartbeats pile up in the middleware's buffer.
    assert subscribers(server) == 1


def test_paste_gzip_middleware_inside_wsgisse_compresses_only_the_pages(
    start_server: StartServer,
) -> None:
    server = serve_compat(start_server, "gzip_beside_stream")
    page = urllib.request.Request(server.url + "/page", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(page, timeout=5) as response:
        assert response.headers["Content-Encoding"] == "gzip"
    with open_stream(server.url + "/events", {"Accept-Encoding": "gzip"}) as stream:
        assert stream.headers.get("Content-Encoding") is None
        post(server, "/publish?data=now")
        assert stream.next_event(PROMPT).data == "now"
