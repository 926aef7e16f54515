"""Every Python snippet of README.rst runs, and does what the README says it does.

Each snippet is tested twice: in-process through ``SSETestClient`` (fast, exact), and as a
newcomer would run it: saved as a module, served by the command the README gives
(``gunicorn -k gevent``), with the page opened in headless Chromium where the snippet has
one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from _browser import wait_for_js
from _servers import EventStream, ServerProcess
from playwright.sync_api import Page
from werkzeug.test import Client

from wsgisse.testing import SSETestClient, wait_until

README = Path(__file__).resolve().parent.parent / "README.rst"
SNIPPET = re.compile(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", re.MULTILINE)
# Generous: the machine running the suite may be loaded.
WAIT = 15.0

ServeGunicorn = Callable[..., ServerProcess]
OpenSSE = Callable[..., EventStream]


def snippets() -> list[str]:
    found = [
        "\n".join(line[4:] for line in block.splitlines())
        for block in SNIPPET.findall(README.read_text(encoding="utf-8"))
    ]
    assert len(found) == 5, "a README snippet was added or removed: test it here"
    return found


def run(source: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    namespace = {"__name__": "readme"} if namespace is None else namespace
    exec(compile(source, str(README), "exec"), namespace)  # noqa: S102 - our own README
    return namespace


def save(directory: Path, name: str, source: str) -> Path:
    """Save a snippet as ``directory/name.py``, as the README tells a reader to."""
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def blocks() -> list[str]:
    return snippets()


# -- plain WSGI --------------------------------------------------------------------------------


def test_the_plain_wsgi_quick_start_publishes_what_the_page_listens_for(
    blocks: list[str],
) -> None:
    ns = run(blocks[0])
    client = SSETestClient(ns["app"])
    with client.stream("/events") as response:
        with client.stream("/say", method="POST") as said:
            assert said.status_code == 204
        event = response.next_event()
        assert (event.type, event.data) == ("greeting", '{"text":"hello"}')
    with client.stream("/") as page:
        page.read_to_end()
        assert 'addEventListener("greeting"' in page.body.decode()


def test_the_readme_says_that_the_memory_backend_reaches_one_process_only() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    quick_start = text.index("Quick start: plain WSGI")
    note = text.index("reaches only that process's clients")
    assert quick_start < note < text.index("Quick start: Flask")
    assert "RedisBackend" in text[note : text.index("Quick start: Flask")]


@pytest.mark.slow
def test_in_chromium_the_plain_wsgi_quick_start_greets_every_open_tab(
    blocks: list[str], tmp_path: Path, serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    save(tmp_path, "hello", blocks[0])
    server = serve_gunicorn("hello:app", pythonpath=[tmp_path])
    tabs = [browser_page, browser_page.context.new_page()]
    for tab in tabs:
        tab.goto(server.url + "/")
        # A reader presses the button once the page is there; the stream is open by then.
        wait_for_js(tab, "source.readyState === EventSource.OPEN", timeout=WAIT)
    tabs[0].click("button")
    for tab in tabs:
        wait_for_js(
            tab,
            "document.querySelectorAll('#said li').length === 1",
            timeout=WAIT,
            show="document.getElementById('said').innerHTML",
        )
        assert tab.inner_text("#said li") == "hello"


# -- Flask and Bottle --------------------------------------------------------------------------


def test_the_flask_quick_start_publishes_what_is_said(blocks: list[str]) -> None:
    ns = run(blocks[1])
    with SSETestClient(ns["app"]).stream("/events") as response:
        assert ns["app"].test_client().post("/say", data={"text": "hi"}).status_code == 204
        event = response.next_event()
        assert (event.type, event.data) == ("said", "hi")


def test_the_bottle_quick_start_publishes_what_is_said_and_counts_down(
    blocks: list[str],
) -> None:
    ns = run(blocks[2])
    client = SSETestClient(ns["app"])
    with client.stream("/countdown") as countdown:
        assert [event.data for event in countdown.read_to_end()] == ["3", "2", "1"]
    with client.stream("/events") as response:
        assert Client(ns["app"]).post("/say", data={"text": "hi"}).status_code == 200
        event = response.next_event()
        assert (event.type, event.data) == ("said", "hi")


@pytest.mark.slow
@pytest.mark.parametrize(("index", "name"), [(1, "flask_hello"), (2, "bottle_hello")])
def test_served_by_gunicorn_the_framework_quick_starts_stream_what_is_said(
    blocks: list[str],
    tmp_path: Path,
    serve_gunicorn: ServeGunicorn,
    open_sse: OpenSSE,
    index: int,
    name: str,
) -> None:
    save(tmp_path, name, blocks[index])
    server = serve_gunicorn(f"{name}:app", pythonpath=[tmp_path])
    stream = open_sse(server.url + "/events")
    said = requests.post(server.url + "/say", data={"text": "héllo"}, timeout=WAIT)
    assert said.ok
    event = stream.next_event(timeout=WAIT)
    assert (event.type, event.data) == ("said", "héllo")


# -- Who may read ------------------------------------------------------------------------------


def test_the_authorization_example_refuses_and_revokes(blocks: list[str]) -> None:
    ns = run(blocks[3])
    client = SSETestClient(ns["app"])
    origin = {"Origin": "https://app.example"}
    with client.stream("/events?channel=news", headers=origin) as anonymous:
        assert anonymous.status_code == 401
    alice = {"REMOTE_USER": "alice"}
    with client.stream("/events?channel=admin", headers=origin, environ=alice) as denied:
        assert denied.status_code == 403
    root = {"REMOTE_USER": "root"}
    with client.stream("/events?channel=admin", headers=origin, environ=root) as ok:
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-credentials"] == "true"
    with client.stream("/events?channel=news", headers=origin, environ=alice) as reading:
        assert ns["app"].endpoint.revoke(user="alice") == 1
        assert reading.read_to_end()[-1].type == "wsgisse-end"


# Stands in for what the README leaves to the reader's stack (a login, an auth proxy):
# every request is Alice's; and it lets the test publish into the served process and see
# its subscribers.
AS_ALICE = """

def served(environ, start_response):
    environ["REMOTE_USER"] = "alice"
    news = channels["news"]
    if environ["PATH_INFO"] == "/publish":
        news.publish(environ["QUERY_STRING"])
    elif environ["PATH_INFO"] == "/readers":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(news.subscriber_count).encode()]
    else:
        return app(environ, start_response)
    start_response("204 No Content", [])
    return []
"""


@pytest.mark.slow
def test_in_chromium_the_authorization_examples_page_reads_the_news(
    blocks: list[str], tmp_path: Path, serve_gunicorn: ServeGunicorn, browser_page: Page
) -> None:
    save(tmp_path, "who_may_read", blocks[3] + AS_ALICE)
    server = serve_gunicorn("who_may_read:served", pythonpath=[tmp_path])
    browser_page.goto(server.url + "/")

    def reading() -> bool:
        return requests.get(server.url + "/readers", timeout=WAIT).text == "1"

    # A page refused with 400 (no ?channel=) would never subscribe: its EventSource gives up.
    wait_until(reading, timeout=WAIT, message="the page reading the news channel")
    requests.post(server.url + "/publish?breaking", timeout=WAIT).raise_for_status()
    wait_for_js(
        browser_page,
        "document.body.textContent.includes('breaking')",
        timeout=WAIT,
        show="document.body.textContent",
    )


# -- Testing your streams ----------------------------------------------------------------------


def test_the_testing_example_passes(blocks: list[str]) -> None:
    ns = run(blocks[0])
    run(blocks[4], ns)
    ns["test_greetings_reach_the_page"]()
