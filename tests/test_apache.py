"""wsgisse under Apache with mod_wsgi, served by the recipe in deploy/apache/.

Debian's apache2 and libapache2-mod-wsgi-py3 (see ``_apache.py``) serve
``tests.live.deploy_app`` in a mod_wsgi daemon process, with HTTP/2 and TLS from
mod_http2 and mod_ssl. Proven as the nginx and Caddy recipes are (``test_deploy.py``):
headless Chromium opens ten EventSources; over HTTP/2 all ten receive each event within
a second, over HTTP/1.1 six open and four wait. And: streams are capped below the
daemon's threads, a graceful restart gives every stream its farewell, a stop never
hangs, the stream is never compressed while pages are, and several daemon processes
with the memory backend are warned of.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from _apache import ApacheServer, apache_available, apache_server
from _browser import wait_for_js
from _proxies import HttpsStream, negotiated_protocol
from _servers import EventStream, open_stream
from conftest import StartServer
from playwright.sync_api import Page
from test_deploy import (
    _NAVIGATION_JS,
    _OPEN_COUNT,
    _OPEN_SOURCES_JS,
    _SUMMARY,
    _TIME_PUBLISH_JS,
    BROWSER_CONNECTION_LIMIT,
    DELIVERY_BOUND_MS,
    ROUNDS,
    SOURCES,
    certificate,
    tls_browser,
    tls_page,
)

pytestmark = [
    pytest.mark.apache,
    pytest.mark.skipif(apache_available() is not None, reason=str(apache_available())),
]

# Re-exported fixtures (pytest finds them as this module's names).
__all__ = ["certificate", "tls_browser", "tls_page"]

APP = "tests.live.deploy_app:app"
WAIT = 10.0
# The recipe's daemon: 100 threads, so at most 99 streams per process.
RECIPE_THREADS = "threads=100"

MEASURED: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_measurements(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if not MEASURED or reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_sep("-", "measured by test_apache.py")
        for name, value in MEASURED.items():
            reporter.write_line(f"{name}: {value}")


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    return context


def _get(server: ApacheServer, path: str, **kwargs: Any) -> requests.Response:
    # The certificate is the test's own: only what arrives is checked, not who signed it.
    return requests.get(server.url + path, verify=False, timeout=WAIT, **kwargs)  # noqa: S501


def _publish(server: ApacheServer, data: str) -> None:
    requests.post(
        server.url + f"/publish?data={data}",
        verify=False,  # noqa: S501 - as in _get
        timeout=WAIT,
    ).raise_for_status()


def _subscribers(server: ApacheServer) -> int:
    count: int = _get(server, "/stats").json()["subscribers"]
    return count


def _wait_for_subscribers(server: ApacheServer, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while (seen := _subscribers(server)) != count:
        assert time.monotonic() < deadline, f"{seen} subscribers, not {count}"
        time.sleep(0.05)


def _stream(server: ApacheServer) -> EventStream:
    stream = open_stream(server.url + "/events", ssl_context=_tls(), timeout=WAIT)
    assert stream.status == 200
    return stream


@pytest.fixture(autouse=True)
def _quiet_insecure_warning() -> Iterator[None]:
    import warnings  # noqa: PLC0415

    from urllib3.exceptions import InsecureRequestWarning  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRequestWarning)
        yield


# -- in Chromium: HTTP/2 lifts the six-connection limit --------------------------------------


def test_over_http2_all_ten_event_sources_receive_within_a_second(
    start_server: StartServer, certificate: Any, tls_page: Page
) -> None:
    server = start_server(apache_server(APP, certificate))
    page = tls_page
    page.goto(server.url + "/")
    assert page.evaluate(_NAVIGATION_JS)["protocol"] == "h2"
    page.evaluate(_OPEN_SOURCES_JS, {"n": SOURCES, "url": "/events"})
    wait_for_js(page, f"{_OPEN_COUNT} >= {SOURCES}", show=_SUMMARY)
    _wait_for_subscribers(server, SOURCES)

    latencies: list[float] = []
    for round_ in range(ROUNDS):
        data = str(round_)
        receipts = page.evaluate(_TIME_PUBLISH_JS, {"data": data})
        assert all(r is not None and r["data"] == data for r in receipts), receipts
        latencies += [r["ms"] for r in receipts]
    assert max(latencies) < DELIVERY_BOUND_MS, latencies
    MEASURED["apache HTTP/2: EventSources open of 10"] = page.evaluate(_OPEN_COUNT)
    MEASURED[f"apache HTTP/2: publish-to-receive ms (median, max of {len(latencies)})"] = (
        round(statistics.median(latencies), 1),
        round(max(latencies), 1),
    )


def test_over_http1_only_six_of_ten_event_sources_connect(
    start_server: StartServer, certificate: Any, tls_page: Page
) -> None:
    server = start_server(
        apache_server(APP, certificate, edits={"Protocols h2 http/1.1": "Protocols http/1.1"})
    )
    page = tls_page
    page.goto(server.url + "/")
    assert page.evaluate(_NAVIGATION_JS)["protocol"] == "http/1.1"
    page.evaluate(_OPEN_SOURCES_JS, {"n": SOURCES, "url": "/events"})
    wait_for_js(page, f"{_OPEN_COUNT} >= {BROWSER_CONNECTION_LIMIT}", show=_SUMMARY)
    _wait_for_subscribers(server, BROWSER_CONNECTION_LIMIT)
    page.wait_for_timeout(1000)  # time for a seventh to connect, were it allowed to
    states = [source["readyState"] for source in page.evaluate(_SUMMARY)]
    assert states.count(1) == BROWSER_CONNECTION_LIMIT, states
    assert states.count(0) == SOURCES - BROWSER_CONNECTION_LIMIT, states
    MEASURED["apache HTTP/1.1: EventSources open of 10"] = states.count(1)


# -- the daemon's threads, its shutdown, compression ------------------------------------------


def test_streams_are_capped_below_the_daemon_threads(
    start_server: StartServer, certificate: Any
) -> None:
    server = start_server(apache_server(APP, certificate, edits={RECIPE_THREADS: "threads=4"}))
    streams = [_stream(server) for _ in range(3)]
    try:
        _wait_for_subscribers(server, 3)
        # The fourth is told to come back later, and ordinary requests are still served.
        with _stream(server) as refused:
            events = refused.read_to_end(timeout=WAIT)
        assert [(e.type, json.loads(e.data)) for e in events] == [
            ("wsgisse-end", {"reason": "capacity"})
        ]
        assert _subscribers(server) == 3
        _publish(server, "still")
        assert all(s.next_event(timeout=WAIT).data == "still" for s in streams)
    finally:
        for stream in streams:
            stream.close()


def test_a_graceful_restart_gives_every_stream_its_farewell_and_they_come_back(
    start_server: StartServer, certificate: Any
) -> None:
    server = start_server(apache_server(APP, certificate))
    streams = [_stream(server) for _ in range(5)]
    try:
        _wait_for_subscribers(server, 5)
        started = time.monotonic()
        server.graceful_restart()  # apachectl graceful
        for stream in streams:
            events = stream.read_to_end(timeout=WAIT)
            assert [(e.type, json.loads(e.data)["reason"]) for e in events] == [
                ("wsgisse-end", "shutdown")
            ]
            assert stream.retry is not None
        took = time.monotonic() - started
        # Well before mod_wsgi's shutdown-timeout (5 s) would have cut them.
        assert took < 4, took
        MEASURED["apache graceful restart: 5 farewells received in s"] = round(took, 3)
    finally:
        for stream in streams:
            stream.close()
    # The new daemon serves the browsers that come back.
    with _stream(server) as again:
        _wait_for_subscribers(server, 1)
        _publish(server, "back")
        assert again.next_event(timeout=WAIT).data == "back"


def test_stopping_apache_with_open_streams_never_hangs(
    start_server: StartServer, certificate: Any
) -> None:
    server = start_server(apache_server(APP, certificate))
    streams = [_stream(server) for _ in range(5)]
    try:
        _wait_for_subscribers(server, 5)
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)  # apachectl stop
        for stream in streams:
            stream.read_to_end(timeout=WAIT)  # the connection closes
        assert server.stop(timeout=WAIT) == 0, server.output_tail()
        took = time.monotonic() - started
        assert took < 5, took
        MEASURED["apache stop with 5 open streams: exited in s"] = round(took, 2)
    finally:
        for stream in streams:
            stream.close()


def test_the_stream_is_not_compressed_while_pages_are(
    start_server: StartServer, certificate: Any
) -> None:
    server = start_server(apache_server(APP, certificate))
    page = _get(server, "/", headers={"Accept-Encoding": "gzip"})
    assert page.headers.get("Content-Encoding") == "gzip", page.headers
    with HttpsStream(server.url + "/events") as stream:  # asks for gzip, br, zstd
        assert stream.read_until(b"\r\n\r\n", timeout=5)
        head = bytes(stream.received).split(b"\r\n\r\n")[0].lower()
        assert b"content-type: text/event-stream" in head
        assert b"content-encoding" not in head
        _wait_for_subscribers(server, 1)
        started = time.monotonic()
        _publish(server, "z")
        assert stream.read_until(b"data: z\n", timeout=DELIVERY_BOUND_MS / 1000)
        MEASURED["apache HTTP/1.1: 1-byte event, publish to raw bytes ms"] = round(
            (time.monotonic() - started) * 1000, 1
        )


def test_several_daemon_processes_with_the_memory_backend_are_warned(
    start_server: StartServer, certificate: Any
) -> None:
    server = start_server(apache_server(APP, certificate, edits={"processes=1 ": "processes=2 "}))
    with _stream(server):
        deadline = time.monotonic() + WAIT
        needle = "keeps its events in this process' memory, but 2 workers serve the app"
        while needle not in server.error_log():
            assert time.monotonic() < deadline, server.output_tail()
            time.sleep(0.05)
    assert "RedisBackend" in server.error_log()


def test_the_deployment_guide_shows_the_recipe_as_shipped() -> None:
    from _proxies import DEPLOY_DIR  # noqa: PLC0415
    from _servers import REPO_ROOT  # noqa: PLC0415
    from test_deploy import _literal_blocks, _without_header_comment  # noqa: PLC0415

    guide = (REPO_ROOT / "docs" / "deployment.rst").read_text()
    recipe = _without_header_comment((DEPLOY_DIR / "apache" / "wsgisse.conf").read_text())
    assert recipe in _literal_blocks(guide), "docs/deployment.rst does not show the recipe"


def test_embedded_mode_streams_and_is_warned_of(
    start_server: StartServer, certificate: Any
) -> None:
    # The recipe without its WSGIProcessGroup: the app runs inside Apache's own children,
    # whose threads (ThreadsPerChild 64 in httpd.conf) the streams then hold.
    edits = {
        "    WSGIProcessGroup wsgisse\n": "",
        # Embedded mode takes its path from WSGIPythonPath, not from the daemon's line.
        "WSGISocketPrefix {{SOCKET_PREFIX}}": (
            "WSGISocketPrefix {{SOCKET_PREFIX}}\nWSGIPythonPath {{PYTHON_PATH}}"
        ),
    }
    server = start_server(apache_server(APP, certificate, edits=edits))
    with _stream(server) as stream:
        _publish(server, "embedded")
        assert stream.next_event(timeout=WAIT).data == "embedded"
        deadline = time.monotonic() + WAIT
        while "mod_wsgi runs this app in embedded mode" not in server.error_log():
            assert time.monotonic() < deadline, server.output_tail()
            time.sleep(0.05)
    assert "WSGIDaemonProcess" in server.error_log()


def test_streams_hold_apaches_own_threads_too(start_server: StartServer, certificate: Any) -> None:
    # httpd.conf's MPM lowered to 8 threads: eight HTTP/1.1 streams open, and then a
    # ninth connection and every page wait, however many daemon threads are free. Size
    # MaxRequestWorkers (and H2MaxWorkers) for the streams as well.
    limit = 8
    server_edits = {
        "ThreadsPerChild 64": f"ThreadsPerChild {limit}",
        "ThreadLimit 64": f"ThreadLimit {limit}",
        "MaxRequestWorkers 128": f"MaxRequestWorkers {limit}",
        "MaxSpareThreads 128": f"MaxSpareThreads {2 * limit}",
    }
    server = start_server(apache_server(APP, certificate, server_edits=server_edits))
    streams = [_stream(server) for _ in range(limit)]
    try:
        # A ninth connection is not even taken up: its TLS handshake waits.
        assert negotiated_protocol(server.port, timeout=2) is None
        with pytest.raises(requests.exceptions.Timeout):
            requests.get(server.url + "/stats", verify=False, timeout=2)  # noqa: S501
    finally:
        for stream in streams:
            stream.close()
    assert "server reached MaxRequestWorkers" in server.error_log()
