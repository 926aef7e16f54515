"""Past the connection cap, in a real browser: the refused EventSource comes back.

gunicorn (``-k gevent``) serves ``compat_app:capped``: ``SSEApp(max_connections=2,
capacity_retry=1000)``. Headless Chromium opens three ``EventSource`` objects on one
page. An ``EventSource`` gives up for good on any status but 200, so wsgisse answers the
one past the cap with a 200 stream that carries only its farewell and a ``retry``: the
browser reconnects by itself, again and again, until a slot frees. A plain ``503``
(``/refused``) leaves it ``CLOSED`` for good: the negative control.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from _browser import wait_for_js
from _servers import LIVE_DIR, ServerProcess, gunicorn_gevent
from conftest import StartServer
from playwright.sync_api import Page

# Opens one EventSource per name and records what each does in window.es[name].
OPEN_SOURCES = """
(names) => {
  window.es = window.es || {};
  for (const [name, url] of names) {
    const source = new EventSource(url);
    const log = {source, received: [], farewells: [], opened: 0, errors: 0,
                 states: [], closedForGood: false};
    source.onopen = () => { log.opened += 1; log.states.push(source.readyState); };
    source.onerror = () => {
      log.errors += 1;
      log.states.push(source.readyState);
      if (source.readyState === EventSource.CLOSED) log.closedForGood = true;
    };
    source.onmessage = (e) => { log.received.push(e.data); };
    source.addEventListener("wsgisse-end", (e) => { log.farewells.push(JSON.parse(e.data)); });
    window.es[name] = log;
  }
}
"""

# Generous bounds: the refused source retries every 1-2 s (capacity_retry plus jitter).
WAIT = 10.0


def post(server: ServerProcess, path: str) -> Any:
    request = urllib.request.Request(server.url + path, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def subscribers(server: ServerProcess) -> int:
    with urllib.request.urlopen(server.url + "/stats", timeout=5) as response:
        count: int = json.load(response)["subscribers"]
        return count


def open_sources(page: Page, **urls: str) -> None:
    page.evaluate(OPEN_SOURCES, list(urls.items()))


def publish_and_wait(server: ServerProcess, page: Page, data: str, names: list[str]) -> None:
    post(server, f"/publish?data={data}")
    for name in names:
        wait_for_js(
            page,
            f"window.es.{name}.received.includes({json.dumps(data)})",
            timeout=WAIT,
            show=f"window.es.{name}.received",
        )


def test_past_the_cap_the_refused_event_source_comes_back_by_itself_when_a_slot_frees(
    start_server: StartServer, browser_page: Page
) -> None:
    server = start_server(gunicorn_gevent("compat_app:capped", pythonpath=[LIVE_DIR]))
    page = browser_page
    page.goto(server.url + "/")
    open_sources(page, a="/events", b="/events")
    wait_for_js(page, "window.es.a.opened && window.es.b.opened", timeout=WAIT)
    publish_and_wait(server, page, "first", ["a", "b"])

    open_sources(page, c="/events")
    # Refused for capacity, twice at least: each time it reconnects by itself.
    wait_for_js(
        page,
        "window.es.c.farewells.length >= 2",
        timeout=WAIT,
        show="window.es.c",
    )
    c = page.evaluate("({...window.es.c, source: undefined})")
    assert all(farewell == {"reason": "capacity"} for farewell in c["farewells"])
    assert not c["closedForGood"]
    # After each farewell the stream ends and the browser goes back to CONNECTING (0).
    assert 0 in c["states"]
    assert 2 not in c["states"]
    assert subscribers(server) == 2

    # The capped process keeps serving the streams it has.
    publish_and_wait(server, page, "while-full", ["a", "b"])
    assert "while-full" not in page.evaluate("window.es.c.received")

    page.evaluate("window.es.a.source.close()")
    # c comes back within its retry, once the server has noticed a left (heartbeat).
    wait_for_js(
        page,
        "window.es.c.source.readyState === EventSource.OPEN"
        " && window.es.c.opened > window.es.c.farewells.length",
        timeout=WAIT,
        show="window.es.c",
    )
    publish_and_wait(server, page, "after", ["b", "c"])
    assert subscribers(server) == 2
    assert page.evaluate("window.es.c.closedForGood") is False


def test_a_503_instead_leaves_the_event_source_closed_for_good(
    start_server: StartServer, browser_page: Page
) -> None:
    server = start_server(gunicorn_gevent("compat_app:capped", pythonpath=[LIVE_DIR]))
    page = browser_page
    page.goto(server.url + "/")
    open_sources(page, refused="/refused")
    wait_for_js(page, "window.es.refused.closedForGood", timeout=WAIT, show="window.es.refused")
    # Longer than the capacity retry: it never tries again, and never opened.
    page.wait_for_timeout(2500)
    refused = page.evaluate("({...window.es.refused, source: undefined})")
    assert (refused["opened"], refused["errors"], refused["states"]) == (0, 1, [2])
