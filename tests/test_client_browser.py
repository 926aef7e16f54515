"""wsgisse.js in a real headless Chromium, against gunicorn (``-k gevent``) over HTTP/1.1.

The app is ``tests/live/client_app.py``; the page code is ``tests/live/client_harness.js``
(scenarios that return what they saw; the assertions are here). Tabs are real tabs of one
browser context (one profile): they share SharedWorkers, Web Locks and BroadcastChannels
exactly as a user's tabs do.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _browser import wait_for_js
from _client_checks import (
    check_bad_gateway,
    check_capacity,
    check_history_lost,
    check_multiplexed,
    check_no_content,
    check_revoked,
    check_tabs,
    check_worker_fallback,
)
from _servers import LIVE_DIR, ServerProcess, gunicorn_gevent
from conftest import StartServer
from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 20.0


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(gunicorn_gevent("client_app:app", pythonpath=[LIVE_DIR]))


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    context.set_default_timeout(WAIT * 1000)
    try:
        yield context
    finally:
        context.close()


def get(server: ServerProcess, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=5) as response:
        return json.load(response)


def post(server: ServerProcess, path: str) -> Any:
    request = urllib.request.Request(server.url + path, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def publish_slowly(server: ServerProcess, prefix: str, count: int) -> None:
    """Publish ``count`` events, one every 10 ms."""
    for number in range(count):
        post(server, f"/publish?data={prefix}{number}")
        time.sleep(0.01)


def wait_connected(server: ServerProcess, count: int) -> None:
    """Wait (bounded) until the server holds ``count`` streams: a gone client is noticed
    at the next heartbeat (0.3 s)."""
    deadline = time.monotonic() + WAIT
    while (connected := get(server, "/stats")["connected"]) != count:
        assert time.monotonic() < deadline, f"{connected} streams, not {count}"
        time.sleep(0.05)


def open_tab(context: BrowserContext, server: ServerProcess) -> Page:
    page = context.new_page()
    page.goto(server.url + "/")
    wait_for_js(page, "window.harnessReady === true", timeout=WAIT)
    return page


def scenario(page: Page, name: str) -> Any:
    return page.evaluate(f"harness.{name}()")


def tab(page: Page) -> Any:
    return page.evaluate("harness.snapshot('tab')")


def wait_received(pages: list[Page], count: int) -> None:
    for page in pages:
        wait_for_js(
            page,
            f"window.rec.tab.received.length >= {count}",
            timeout=WAIT,
            show="window.rec.tab.received",
        )


def open_shared_tabs(
    context: BrowserContext, server: ServerProcess, count: int, share: str
) -> list[Page]:
    pages = [open_tab(context, server) for _ in range(count)]
    for page in pages:
        page.evaluate(
            "(share) => harness.open('tab', '/events?channel=news&user=tabs', {share})", share
        )
    for page in pages:
        wait_for_js(page, "window.rec.tab.source.readyState === 1", timeout=WAIT)
    return pages


def test_twelve_tabs_receive_every_event_over_one_shared_worker_connection(
    server: ServerProcess, context: BrowserContext
) -> None:
    pages = open_shared_tabs(context, server, 12, "worker")
    assert get(server, "/stats")["connected"] == 1
    ids = post(server, "/publish?data=e&count=20")["ids"]
    wait_received(pages, 20)

    # The first tab closes: the worker keeps the connection for the others.
    pages[0].close()
    post(server, "/publish?data=late")
    wait_received(pages[1:], 21)
    assert get(server, "/stats")["connected"] == 1
    expected = [f"e{n}" for n in range(20)] + ["late"]
    snapshots = [tab(page) for page in pages[1:]]
    check_tabs(snapshots, expected, "worker")
    assert all(seen["ids"][:20] == ids for seen in snapshots)
    assert get(server, "/stats")["requests"]["tabs"] == 1


def test_the_leader_tab_closes_and_another_takes_over_losing_and_repeating_nothing(
    server: ServerProcess, context: BrowserContext
) -> None:
    pages = open_shared_tabs(context, server, 12, "lock")
    assert get(server, "/stats")["connected"] == 1
    post(server, "/publish?data=a&count=5")
    wait_received(pages, 5)
    leaders = [page for page in pages if tab(page)["leading"]]
    assert len(leaders) == 1
    rest = [page for page in pages if page is not leaders[0]]

    # Publish all the while the leader goes (one event every 10 ms from another thread):
    # some reach the old leader and not every tab, some are published with no leader.
    publisher = threading.Thread(target=publish_slowly, args=(server, "b", 40))
    publisher.start()
    try:
        leaders[0].close()
    finally:
        publisher.join(timeout=WAIT)
    wait_received(rest, 45)
    post(server, "/publish?data=c")
    wait_received(rest, 46)
    expected = [f"a{n}" for n in range(5)] + [f"b{n}" for n in range(40)] + ["c"]
    snapshots = [tab(page) for page in rest]
    check_tabs(snapshots, expected, "lock")
    assert sum(s["leading"] for s in snapshots) == 1
    assert get(server, "/stats")["requests"]["tabs"] == 2  # The first leader's, the second's.
    wait_connected(server, 1)


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("badGateway", check_bad_gateway),
        ("capacity", check_capacity),
        ("revoked", check_revoked),
        ("noContent", check_no_content),
        ("historyLost", check_history_lost),
        ("multiplexed", check_multiplexed),
        ("workerFallback", check_worker_fallback),
    ],
)
def test_one_tab_scenario(
    server: ServerProcess, browser_page: Page, name: str, check: Callable[[Any], None]
) -> None:
    """502 then recovery, capacity, revoked, 204, history lost, two channels, a worker that
    cannot start (the checks are in _client_checks.py)."""
    browser_page.goto(server.url + "/")
    wait_for_js(browser_page, "window.harnessReady === true", timeout=WAIT)
    check(scenario(browser_page, name))


def test_the_classic_script_build_works_as_a_plain_script_tag(
    server: ServerProcess, browser_page: Page
) -> None:
    browser_page.goto(server.url + "/")
    browser_page.add_script_tag(url="/events/wsgisse.global.js")
    browser_page.evaluate(
        """() => {
          window.classic = [];
          const source = new wsgisse.WsgisseEventSource('/events?channel=news');
          source.onmessage = (e) => window.classic.push(e.data);
          source.onopen = () => { window.classicOpen = true; };
        }"""
    )
    wait_for_js(browser_page, "window.classicOpen === true", timeout=WAIT)
    post(server, "/publish?data=classic")
    wait_for_js(browser_page, "window.classic.includes('classic')", timeout=WAIT)
