"""wsgisse.js in a real headless Chromium, against gunicorn (``-k gevent``) over HTTP/1.1.

The app is ``tests/live/client_app.py``; the page code is ``tests/live/client_harness.js``
(scenarios that return what they saw; the assertions are here). Tabs are real tabs of one
browser context (one profile): they share SharedWorkers, Web Locks and BroadcastChannels
exactly as a user's tabs do.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from _browser import wait_for_js
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
    for page in pages[1:]:
        seen = tab(page)
        assert seen["sharing"] == "worker"
        assert seen["received"] == expected
        assert seen["ids"][:20] == ids


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

    # Publish while the leader goes: some events reach no tab through it.
    leaders[0].close()
    post(server, "/publish?data=b&count=5")
    wait_received(rest, 10)
    post(server, "/publish?data=c")
    wait_received(rest, 11)
    expected = [f"a{n}" for n in range(5)] + [f"b{n}" for n in range(5)] + ["c"]
    snapshots = [tab(page) for page in rest]
    assert [s["received"] for s in snapshots] == [expected] * len(rest)
    assert sum(s["leading"] for s in snapshots) == 1
    assert all(s["sharing"] == "lock" for s in snapshots)
    wait_connected(server, 1)


def test_after_a_proxy_answers_502_it_recovers_and_loses_nothing(
    server: ServerProcess, browser_page: Page
) -> None:
    browser_page.goto(server.url + "/")
    wait_for_js(browser_page, "window.harnessReady === true", timeout=WAIT)
    seen = scenario(browser_page, "badGateway")
    assert seen["received"] == ["before", "in-flight", "while-down", "after"]
    assert seen["readyState"] == 1
    assert seen["opens"] == 2
    assert seen["errors"] >= 3  # One per failed attempt, as a native EventSource fires.
    assert seen["nativeReadyState"] == 2  # The control: a bare EventSource gave up.
    assert get(server, "/stats")["bad_gateway"] >= 3


def test_revoked_the_source_stops_and_never_asks_again(
    server: ServerProcess, browser_page: Page
) -> None:
    browser_page.goto(server.url + "/")
    wait_for_js(browser_page, "window.harnessReady === true", timeout=WAIT)
    seen = scenario(browser_page, "revoked")
    assert seen["received"] == ["r1"]
    assert seen["ends"] == ["revoked"]
    assert (seen["readyState"], seen["closedReason"]) == (2, "revoked")
    assert seen["requestsAtClose"] == seen["requestsLater"] == 1


def test_a_204_stops_it_for_good(server: ServerProcess, browser_page: Page) -> None:
    browser_page.goto(server.url + "/")
    wait_for_js(browser_page, "window.harnessReady === true", timeout=WAIT)
    seen = scenario(browser_page, "noContent")
    assert (seen["readyState"], seen["closedReason"]) == (2, "no-content")
    assert seen["requests"] == 1
    assert seen["opens"] == 0


def test_history_lost_runs_the_callback_and_the_stream_goes_on(
    server: ServerProcess, browser_page: Page
) -> None:
    browser_page.goto(server.url + "/")
    wait_for_js(browser_page, "window.harnessReady === true", timeout=WAIT)
    seen = scenario(browser_page, "historyLost")
    assert [info["lastEventId"] for info in seen["lost"]] == ["no-such-id"]
    assert seen["received"] == ["h1"]


def test_two_channels_over_one_stream_name_each_event_s_channel(
    server: ServerProcess, browser_page: Page
) -> None:
    browser_page.goto(server.url + "/")
    wait_for_js(browser_page, "window.harnessReady === true", timeout=WAIT)
    seen = scenario(browser_page, "multiplexed")
    # The multiplexed stream reads its channels in turn: no order between channels.
    assert dict(zip(seen["received"], seen["channels"], strict=True)) == {
        "m-alert": "alerts",
        "m-news": "news",
    }
    assert set(seen["positions"]) == {"news", "alerts"}


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
