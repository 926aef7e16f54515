"""Fixtures for tests against real servers and a real browser.

Servers (each a :class:`_servers.ServerProcess` on 127.0.0.1 and a free port, started
before the test and stopped after it, by its own pid and process group)::

    def test_x(serve_wsgi):                  # runs once per WSGI server
        server = serve_wsgi("tests.live.apps:stream_app")
    def test_y(serve_gunicorn, serve_gevent, serve_werkzeug): ...
    def test_z(start_server):                # any ServerProcess, e.g. from a factory
        server = start_server(gunicorn_gevent("examples.demo:app", workers=2))
    def test_r(redis_server): ...            # a started RedisServer; .url, .restart()

Streams: ``open_sse(url, headers=None, timeout=...)`` is :func:`_servers.open_stream`,
closed after the test.

Browser: ``browser`` (one headless Chromium for the session) and ``browser_page`` (a page
in a fresh context for each test). Tests using them are marked ``browser``; tests using
``redis_server`` are marked ``redis``.

When a test fails, the report shows the output of every server it started and the
console of its page. At the end of the session, a server or child process still running
fails the run.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import psutil
import pytest
from _browser import launch_chromium, new_page, page_log
from _servers import (
    WSGI_SERVERS,
    EventStream,
    RedisServer,
    ServerProcess,
    gevent_server,
    gunicorn_gevent,
    open_stream,
    running_servers,
    werkzeug_threaded,
)
from _servers import (
    redis_server as make_redis_server,
)
from playwright.sync_api import Browser, Page

from wsgisse.testing import wait_until

if TYPE_CHECKING:
    from wsgisse.backends.redis import RedisBackend
    from wsgisse.backends.redis_cluster import RedisClusterBackend

_S = TypeVar("_S", bound=ServerProcess)


class StartServer(Protocol):
    """The type of the ``start_server`` fixture: it returns the server it was given."""

    def __call__(self, server: _S, /) -> _S: ...


_SERVERS = pytest.StashKey[list[ServerProcess]]()
_PAGES = pytest.StashKey[list[Page]]()

# Output shown per server in a failure report.
_REPORT_TAIL = 8000

# Child processes that the standard library keeps until the interpreter exits.
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")

_MARKERS_BY_FIXTURE = {
    "browser": "browser",
    "browser_page": "browser",
    "redis_server": "redis",
}


# -- hooks -----------------------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the real things they use, so `-m "not browser"` selects correctly."""
    for item in items:
        fixturenames = getattr(item, "fixturenames", ())
        for marker in sorted({m for f, m in _MARKERS_BY_FIXTURE.items() if f in fixturenames}):
            item.add_marker(marker)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Add each server's output and each page's console to a failed test's report."""
    report = yield
    if report.failed:
        for server in item.stash.get(_SERVERS, []):
            report.sections.append(
                (f"{server.name} output ({server.url})", server.output_tail(_REPORT_TAIL))
            )
        for page in item.stash.get(_PAGES, []):
            report.sections.append((f"browser console ({page.url})", str(page_log(page))))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if a server or any other child process outlived its test."""
    problems = []
    for server in running_servers():
        problems.append(f"server still running: {server!r}")
        server.close()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        # multiprocessing's helpers live as long as the interpreter, by design.
        if not any(helper in " ".join(cmdline) for helper in _INTERPRETER_HELPERS):
            problems.append(f"child process still running: {child.pid} {cmdline}")
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.line("")
            reporter.section("processes left running", sep="!", red=True)
            for line in problems:
                reporter.line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- servers ---------------------------------------------------------------------------------


@pytest.fixture
def start_server(request: pytest.FixtureRequest) -> Iterator[StartServer]:
    """Start a :class:`ServerProcess` now and stop it after the test; returns it started.

    Servers stop in the reverse order of their start (a proxy before its upstream).
    """
    started: list[ServerProcess] = []
    request.node.stash.setdefault(_SERVERS, [])

    def start(server: _S, /) -> _S:
        started.append(server)
        request.node.stash[_SERVERS].append(server)
        server.start()
        return server

    yield start
    errors = []
    for server in reversed(started):
        try:
            server.close()
        except Exception as exc:  # noqa: BLE001 - stop every server, then report
            errors.append(f"{server.name}: {exc}")
    if errors:
        pytest.fail("could not stop: " + "; ".join(errors))


@pytest.fixture(params=sorted(WSGI_SERVERS))
def serve_wsgi(
    request: pytest.FixtureRequest, start_server: StartServer
) -> Callable[..., ServerProcess]:
    """``serve_wsgi(app_ref, **kwargs)``: serve a WSGI app; the test runs once per server.

    The parameters are "gevent-pywsgi", "gunicorn-gevent" and "werkzeug-threaded";
    ``kwargs`` go to the factory (all take ``port``, ``pythonpath`` and ``env``).
    """
    factory = WSGI_SERVERS[request.param]

    def serve(app_ref: str, **kwargs: Any) -> ServerProcess:
        return start_server(factory(app_ref, **kwargs))

    return serve


@pytest.fixture
def serve_gunicorn(
    start_server: StartServer,
) -> Callable[..., ServerProcess]:
    """``serve_gunicorn(app_ref, workers=1, extra_args=(), ...)``: gunicorn -k gevent."""

    def serve(app_ref: str, **kwargs: Any) -> ServerProcess:
        return start_server(gunicorn_gevent(app_ref, **kwargs))

    return serve


@pytest.fixture
def serve_gevent(
    start_server: StartServer,
) -> Callable[..., ServerProcess]:
    """``serve_gevent(app_ref, ...)``: gevent's pywsgi server, monkey-patched."""

    def serve(app_ref: str, **kwargs: Any) -> ServerProcess:
        return start_server(gevent_server(app_ref, **kwargs))

    return serve


@pytest.fixture
def serve_werkzeug(
    start_server: StartServer,
) -> Callable[..., ServerProcess]:
    """``serve_werkzeug(app_ref, ...)``: Werkzeug's threaded development server."""

    def serve(app_ref: str, **kwargs: Any) -> ServerProcess:
        return start_server(werkzeug_threaded(app_ref, **kwargs))

    return serve


@pytest.fixture
def redis_server(start_server: StartServer) -> RedisServer:
    """A started redis-server of this test's own, on a free port, keeping nothing on disk.

    ``redis_server.url`` is for ``redis.Redis.from_url``; ``redis_server.stop()`` and
    ``redis_server.start()`` (or ``.restart()``) take it down and back on the same port.
    """
    return start_server(make_redis_server())


@pytest.fixture
def open_sse() -> Iterator[Callable[..., EventStream]]:
    """``open_sse(url, headers=None, *, timeout=10.0, last_event_id=None)``.

    :func:`_servers.open_stream`, with every stream closed after the test.
    """
    streams: list[EventStream] = []

    def open_(url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> EventStream:
        stream = open_stream(url, headers, **kwargs)
        streams.append(stream)
        return stream

    yield open_
    for stream in streams:
        stream.close()


# -- browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium (Debian's) for the whole session; pages isolate the tests."""
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context, closed after the test.

    Its console is recorded and shown when the test fails; wait on it with
    ``_browser.wait_for_js(page, "window.received.length >= 3", timeout=10)``.
    """
    with new_page(browser) as page:
        request.node.stash.setdefault(_PAGES, []).append(page)
        yield page


# -- Redis backends -----------------------------------------------------------------------------

#: The name of a Redis backend's reader thread (one per backend object and process).
REDIS_READER = "wsgisse redis reader"

B = TypeVar("B")


def _closed_after_the_test(make: Callable[..., B]) -> Iterator[Callable[..., B]]:
    made: list[Any] = []

    def made_here(url: str, **options: Any) -> B:
        backend = make(url, **options)
        made.append(backend)
        return backend

    yield made_here
    for backend in made:
        backend.close()
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name == REDIS_READER],
        10.0,
        "every reader thread ended",
    )


@pytest.fixture
def make_backend() -> Iterator[Callable[..., RedisBackend]]:
    """``make_backend(url, **options)``: a RedisBackend, closed (its reader gone) after."""
    from wsgisse.backends.redis import RedisBackend  # noqa: PLC0415 - only Redis tests

    yield from _closed_after_the_test(RedisBackend)


@pytest.fixture
def make_cluster_backend() -> Iterator[Callable[..., RedisClusterBackend]]:
    """``make_cluster_backend(url, **options)``: the same for a RedisClusterBackend."""
    from wsgisse.backends.redis_cluster import RedisClusterBackend  # noqa: PLC0415

    yield from _closed_after_the_test(RedisClusterBackend)


def serve_on_three_workers(start_server: StartServer, app: str, redis_url: str) -> ServerProcess:
    """``gunicorn -w 3 -k gevent`` serving ``app`` on Redis, once all three workers answer.

    ``app`` answers ``GET /pid`` with its worker's pid (tests/live/redis_app.py and
    redis_fleet_app.py do), so that a test starts only when the fleet is whole.
    """
    server = start_server(
        gunicorn_gevent(app, workers=3, env={"WSGISSE_TEST_REDIS_URL": redis_url})
    )
    answered: set[int] = set()

    def all_answer() -> bool:
        with urllib.request.urlopen(server.url + "/pid", timeout=5) as response:
            answered.add(int(response.read()))
        return len(answered) == 3

    wait_until(all_answer, 20.0, "all three workers answering")
    return server
