"""Every file in examples/ runs as a real server, and is talked to over HTTP and in Chromium.

The examples are served by gunicorn's gevent worker (``NAME:create_app()``, with
``examples/`` on the path, as their docstrings say to deploy them), by their own
``python examples/NAME.py``, and all together by ``python examples/demo.py`` (what
``make demo`` runs). The browser tests open each example's own page in Debian's headless
Chromium and read what its ``EventSource`` put on the page.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from _browser import wait_for_js
from _examples import EXAMPLES_DIR, post
from _servers import EventStream as LiveStream
from _servers import ServerProcess, free_port, python_env
from playwright.sync_api import Page

from wsgisse import MessageEvent

ServeGunicorn = Callable[..., ServerProcess]
OpenSSE = Callable[..., LiveStream]
StartServer = Callable[[ServerProcess], ServerProcess]

NOTE = "héllo\nwörld 🎉"


def serve_example(
    serve_gunicorn: ServeGunicorn, name: str, config: dict[str, Any] | None = None
) -> ServerProcess:
    """Serve ``examples/NAME.py`` with gunicorn -k gevent, calling ``create_app(config)``."""
    args = "" if config is None else repr(config)
    return serve_gunicorn(f"{name}:create_app({args})", pythonpath=[EXAMPLES_DIR])


def run_script(start_server: StartServer, name: str) -> ServerProcess:
    """Start ``python examples/NAME.py`` on a free port given in ``$PORT``."""
    port = free_port()
    env = python_env(env={"HOST": "127.0.0.1", "PORT": str(port)})
    argv = [sys.executable, str(EXAMPLES_DIR / f"{name}.py")]
    return start_server(ServerProcess(argv, port=port, name=f"{name}.py", env=env))


def first_tick(stream: LiveStream) -> list[MessageEvent]:
    """The clock's next whole tick: its unnamed, ``est`` and ``pdt`` events."""
    event = stream.next_event(timeout=5)
    while event.type != "message":  # joined in the middle of a tick
        event = stream.next_event(timeout=5)
    return [event, *stream.events(2, timeout=5)]


def texts(page: Page, selector: str) -> list[str]:
    """The text of every element ``selector`` matches in ``page``."""
    result: list[str] = page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")
    return result


# -- over HTTP ----------------------------------------------------------------------------------


def test_clock_publishes_utc_then_eastern_and_pacific_times_every_second(
    serve_gunicorn: ServeGunicorn, open_sse: OpenSSE
) -> None:
    server = serve_example(serve_gunicorn, "clock")
    stream = open_sse(server.url + "/events")
    assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    tick, next_tick = first_tick(stream), first_tick(stream)
    assert [e.type for e in tick] == ["message", "est", "pdt"]
    utc, eastern, pacific = (datetime.fromisoformat(e.data) for e in tick)
    assert utc.utcoffset() == timedelta(0)
    assert eastern.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))
    assert pacific.utcoffset() in (timedelta(hours=-8), timedelta(hours=-7))
    assert utc == eastern == pacific  # the same instant
    assert datetime.fromisoformat(next_tick[0].data) - utc == timedelta(seconds=1)


def test_notifications_posted_as_json_or_form_reach_every_stream(
    serve_gunicorn: ServeGunicorn, open_sse: OpenSSE
) -> None:
    server = serve_example(serve_gunicorn, "notifications")
    streams = [open_sse(server.url + "/events") for _ in range(2)]
    for stream in streams:
        stream.next_item()  # subscribed: the first chunk has arrived
    sent = post(server.url + "/notify", {"message": NOTE})
    assert sent.status_code == 201
    form = requests.post(
        server.url + "/notify", data={"message": "from a form"}, allow_redirects=False, timeout=10
    )
    assert form.status_code == 303
    for stream in streams:
        events = stream.events(2)
        assert [(e.type, e.data) for e in events] == [
            ("notification", NOTE),
            ("notification", "from a form"),
        ]
        assert events[0].last_event_id == sent.json()["id"]
    refused = requests.post(server.url + "/notify", json={"message": " "}, timeout=10)
    assert refused.status_code == 400


def test_notifications_replay_to_a_returning_client_exactly_what_it_missed(
    serve_gunicorn: ServeGunicorn, open_sse: OpenSSE
) -> None:
    server = serve_example(serve_gunicorn, "notifications")
    ids = [post(server.url + "/notify", {"message": m}).json()["id"] for m in "abc"]
    stream = open_sse(server.url + "/events", last_event_id=ids[0])
    assert [e.data for e in stream.events(2)] == ["b", "c"]


def test_the_notifications_test_route_exists_only_when_testing(
    serve_gunicorn: ServeGunicorn,
) -> None:
    server = serve_example(serve_gunicorn, "notifications")
    assert requests.post(server.url + "/_test/disconnect", timeout=10).status_code == 404


def test_notifications_presence_snapshot_comes_first_and_leaving_is_told_once(
    serve_gunicorn: ServeGunicorn, open_sse: OpenSSE
) -> None:
    server = serve_example(serve_gunicorn, "notifications", {"WSGISSE_HEARTBEAT": 0.2})
    missed = post(server.url + "/notify", {"message": "missed"}).json()["id"]
    first = post(server.url + "/notify", {"message": "first"}).json()["id"]
    ann = open_sse(server.url + "/events?name=ann", last_event_id=missed)
    # The snapshot, then the replay, then the live events (ann's own joined among them).
    assert [(e.type, e.data) for e in ann.events(3)] == [
        ("presence", '["ann"]'),
        ("notification", "first"),
        ("joined", "ann"),
    ]
    assert ann.last_event_id != first  # the joined event's id: the snapshot has none
    bob_tabs = [open_sse(server.url + "/events?name=bob") for _ in range(2)]
    assert json.loads(bob_tabs[0].next_event().data) == ["ann", "bob"]
    assert json.loads(bob_tabs[1].next_event().data) == ["ann", "bob"]
    assert (ann.next_event().type, requests.get(server.url + "/presence", timeout=10).json()) == (
        "joined",
        {"online": ["ann", "bob"]},
    )
    anonymous = open_sse(server.url + "/events")  # not counted, and given no snapshot
    anonymous.next_item()
    for tab in bob_tabs:
        tab.close()
    left = ann.next_event(timeout=15)  # noticed by the 0.2 s heartbeat's failed write
    assert (left.type, left.data) == ("left", "bob")
    assert requests.get(server.url + "/presence", timeout=10).json() == {"online": ["ann"]}
    post(server.url + "/notify", {"message": "after"})
    assert ann.next_event().data == "after"  # bob left once: no second left before it


def test_monitor_publishes_cpu_and_memory_every_second(
    serve_gunicorn: ServeGunicorn, open_sse: OpenSSE
) -> None:
    server = serve_example(serve_gunicorn, "monitor")
    stream = open_sse(server.url + "/events")
    for event in stream.events(2, timeout=5):
        assert event.type == "stats"
        stats = json.loads(event.data)
        assert 0 <= stats["cpu"] <= 100
        memory = stats["memory"]
        assert 0 < memory["used"] <= memory["total"]
        assert memory["percent"] == round(100 * memory["used"] / memory["total"], 1)


def test_tokens_streams_the_reply_one_word_per_write_then_done_and_ends(
    serve_gunicorn: ServeGunicorn, open_sse: OpenSSE
) -> None:
    server = serve_example(serve_gunicorn, "tokens", {"TOKEN_DELAY": 0.02})
    stream = open_sse(server.url + "/reply?prompt=%20Why%3F%20")
    events = stream.read_to_end(timeout=20)
    words, done = events[:-1], events[-1]
    assert done.type == "done"
    assert json.loads(done.data) == {"words": len(words)}
    assert all(e.type == "message" for e in words)
    reply = "".join(e.data for e in words)
    assert reply.startswith("You asked: “Why?”. Server-sent events are")
    assert all(e.data.startswith(" ") for e in words[1:])
    # Each word left the server as its own chunk, as soon as it was made.
    assert len(stream.chunk_sizes) > len(words)


def test_demo_serves_the_index_and_every_example_under_its_prefix(
    start_server: StartServer, open_sse: OpenSSE
) -> None:
    server = run_script(start_server, "demo")
    index = requests.get(server.url + "/", timeout=10)
    assert index.status_code == 200
    for name in ("clock", "notifications", "monitor", "tokens"):
        assert f'href="{name}/"' in index.text
        moved = requests.get(f"{server.url}/{name}", allow_redirects=False, timeout=10)
        assert (moved.status_code, moved.headers["Location"]) == (308, f"{name}/")
        page = requests.get(f"{server.url}/{name}/", timeout=10)
        assert page.status_code == 200
        assert "EventSource" in page.text
    assert requests.get(server.url + "/nowhere", timeout=10).status_code == 404

    assert [e.type for e in first_tick(open_sse(server.url + "/clock/events"))] == [
        "message",
        "est",
        "pdt",
    ]
    assert open_sse(server.url + "/monitor/events").next_event(timeout=5).type == "stats"
    notes = open_sse(server.url + "/notifications/events")
    notes.next_item()
    post(server.url + "/notifications/notify", {"message": NOTE})
    assert notes.next_event().data == NOTE
    reply = open_sse(server.url + "/tokens/reply?prompt=hi").events(3)
    assert "".join(e.data for e in reply) == "You asked: “hi”."
    assert "Traceback" not in server.output()


def test_without_gevent_the_demo_serves_with_werkzeugs_threaded_server(
    start_server: StartServer, open_sse: OpenSSE
) -> None:
    # A None entry in sys.modules makes `import gevent` raise ImportError, as when it is
    # not installed; the script then runs exactly as `python examples/demo.py` would.
    code = (
        "import runpy, sys; sys.modules['gevent'] = None; sys.path.insert(0, sys.argv[1]);"
        "runpy.run_path(sys.argv[1] + '/demo.py', run_name='__main__')"
    )
    port = free_port()
    env = python_env(env={"HOST": "127.0.0.1", "PORT": str(port)})
    argv = [sys.executable, "-c", code, str(EXAMPLES_DIR)]
    server = start_server(ServerProcess(argv, port=port, name="demo.py-werkzeug", env=env))
    notes = open_sse(server.url + "/notifications/events")
    notes.next_item()
    post(server.url + "/notifications/notify", {"message": NOTE})
    assert notes.next_event().data == NOTE
    assert "Running on http://127.0.0.1:" in server.output()  # Werkzeug's banner


@pytest.mark.parametrize("name", ["clock", "notifications", "monitor", "tokens"])
def test_each_example_runs_as_a_script_on_the_port_in_the_environment(
    name: str, start_server: StartServer, open_sse: OpenSSE
) -> None:
    server = run_script(start_server, name)
    page = requests.get(server.url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    # The browser client (wsgisse.js), or for tokens' one-shot reply a bare EventSource.
    assert "EventSource(" in page.text
    path = "/reply?prompt=hi" if name == "tokens" else "/events"
    stream = open_sse(server.url + path)
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"


# -- in Chromium ----------------------------------------------------------------------------------


def test_in_chromium_the_clock_page_shows_utc_and_the_named_eastern_and_pacific_events(
    serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    server = serve_example(serve_gunicorn, "clock")
    browser_page.goto(server.url + "/")
    shown = "['utc', 'est', 'pdt'].map(id => document.getElementById(id).textContent)"
    wait_for_js(browser_page, f"{shown}.every(text => text.includes('T'))", show=shown)
    utc, eastern, pacific = (datetime.fromisoformat(t) for t in browser_page.evaluate(shown))
    assert utc.utcoffset() == timedelta(0)
    assert eastern.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))
    assert pacific.utcoffset() in (timedelta(hours=-8), timedelta(hours=-7))


def test_in_chromium_a_notification_reaches_every_open_tab_with_its_text_intact(
    serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    server = serve_example(serve_gunicorn, "notifications")
    tabs = [browser_page, browser_page.context.new_page()]
    for tab in tabs:
        tab.goto(server.url + "/")
        wait_for_js(tab, "document.getElementById('status').textContent === 'connected'")
    tabs[0].bring_to_front()  # a background tab's clicks wait for throttled frames
    tabs[0].fill("#message", NOTE)
    tabs[0].click("button")
    for tab in tabs:
        wait_for_js(tab, "document.querySelectorAll('#messages li').length === 1")
        assert texts(tab, "#messages li") == [NOTE]
    assert tabs[0].input_value("#message") == ""


def test_in_chromium_a_page_whose_stream_was_cut_is_replayed_exactly_what_it_missed(
    serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    # A 2 s reconnection delay leaves time to publish while the page is away.
    server = serve_example(
        serve_gunicorn, "notifications", {"TESTING": True, "WSGISSE_RETRY": 2000}
    )
    page = browser_page
    status = "document.getElementById('status').textContent"
    count = "document.querySelectorAll('#messages li').length"
    page.goto(server.url + "/")
    wait_for_js(page, f"{status} === 'connected'")
    post(server.url + "/notify", {"message": "before"})
    wait_for_js(page, f"{count} === 1")

    assert post(server.url + "/_test/disconnect").json() == {"ended": 1}
    wait_for_js(page, f"{status} === 'reconnecting…'", show=status)
    post(server.url + "/notify", {"message": "missed 1"})
    post(server.url + "/notify", {"message": NOTE})
    assert page.evaluate(status) == "reconnecting…"  # published while the page was away

    wait_for_js(page, f"{status} === 'connected' && {count} === 3", show=count)
    post(server.url + "/notify", {"message": "after"})
    wait_for_js(page, f"{count} === 4", show=count)
    # Anything replayed twice would sit before "after", which arrived last.
    assert texts(page, "#messages li") == ["before", "missed 1", NOTE, "after"]


def test_in_chromium_the_notifications_page_lists_who_is_online(
    serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    server = serve_example(serve_gunicorn, "notifications", {"WSGISSE_HEARTBEAT": 0.2})
    first, second = browser_page, browser_page.context.new_page()
    first.goto(server.url + "/")
    me = "document.getElementById('me').textContent"
    shown = "document.getElementById('online').textContent"
    wait_for_js(first, f"{shown} === {me}", show=shown)
    name = first.evaluate(me)
    other = browser_page.context.browser.new_context().new_page()  # type: ignore[union-attr]
    try:
        other.goto(server.url + "/")
        other_name = other.evaluate(me)
        both = ", ".join(sorted([name, other_name]))
        wait_for_js(first, f"{shown} === {both!r}", show=shown)
        wait_for_js(other, f"{shown} === {both!r}", show=shown)
        second.goto(server.url + "/")  # the same session: the same name, a second tab
        wait_for_js(second, f"{shown} === {both!r}", show=shown)
        second.close()  # one of two tabs: still online
        other.close()
        wait_for_js(first, f"{shown} === {name!r}", timeout=15, show=shown)
        assert requests.get(server.url + "/presence", timeout=10).json() == {"online": [name]}
    finally:
        other.context.close()


def test_in_chromium_the_notifications_page_says_so_when_a_restart_lost_the_history(
    serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    # The channel lives in the worker's memory: a restarted server cannot resume the id
    # the page presents, and says so with wsgisse-history-lost, which the page handles
    # through wsgisse.js.
    server = serve_example(serve_gunicorn, "notifications", {"WSGISSE_RETRY": 300})
    page = browser_page
    status = "document.getElementById('status').textContent"
    page.goto(server.url + "/")
    wait_for_js(page, f"{status} === 'connected'")
    post(server.url + "/notify", {"message": "before"})
    wait_for_js(page, "document.querySelectorAll('#messages li').length === 1")
    server.restart()
    wait_for_js(page, f"{status}.includes('missed')", timeout=20, show=status)
    assert page.evaluate("window.source.readyState") == 1
    post(server.url + "/notify", {"message": "after"})
    wait_for_js(page, "document.querySelectorAll('#messages li').length === 2")
    assert texts(page, "#messages li") == ["before", "after"]


def test_in_chromium_the_monitor_page_shows_cpu_and_memory(
    serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    server = serve_example(serve_gunicorn, "monitor")
    browser_page.goto(server.url + "/")
    shown = "['cpu', 'memory'].map(id => document.getElementById(id).textContent)"
    wait_for_js(browser_page, f"{shown}.every(text => text.includes('%'))", show=shown)
    cpu, memory = browser_page.evaluate(shown)
    assert cpu.endswith(" %")
    assert " GiB of " in memory


def test_in_chromium_the_tokens_page_streams_the_reply_and_stop_closes_the_stream(
    serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    server = serve_example(serve_gunicorn, "tokens", {"TOKEN_DELAY": 0.02})
    page = browser_page
    status = "document.getElementById('status').textContent"
    reply = "document.getElementById('reply').textContent"
    page.goto(server.url + "/")
    page.fill("#prompt", "Wie geht es dir? 🎉")
    page.click("#generate")
    wait_for_js(page, f"{status} === 'done'", timeout=20, show=reply)
    text = page.evaluate(reply)
    assert text.startswith("You asked: “Wie geht es dir? 🎉”. Server-sent events are")
    assert text.endswith("one word after another.")
    assert page.evaluate("source.readyState") == 2  # closed: no reconnection

    page.click("#generate")
    wait_for_js(page, f"{reply}.split(' ').length >= 3", show=reply)
    page.click("#stop")
    assert page.evaluate(status) == "stopped"
    assert page.evaluate("source.readyState") == 2
    assert len(page.evaluate(reply)) < len(text)


def test_in_chromium_the_demo_pages_work_under_their_prefixes(
    start_server: StartServer, browser_page: Page
) -> None:
    server = run_script(start_server, "demo")
    page = browser_page
    page.goto(server.url + "/")
    page.click("text=clock")
    assert page.url == server.url + "/clock/"
    wait_for_js(page, "document.getElementById('pdt').textContent.includes('T')")
    page.goto(server.url + "/notifications")  # redirected to /notifications/
    wait_for_js(page, "document.getElementById('status').textContent === 'connected'")
    page.fill("#message", NOTE)
    page.click("button")
    wait_for_js(page, "document.querySelectorAll('#messages li').length === 1")
    assert texts(page, "#messages li") == [NOTE]
