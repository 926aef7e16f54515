"""Every Python snippet of docs/flask-bottle.rst runs, and does what the page says."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from _servers import RedisServer
from flask import Flask

from wsgisse.integrations.flask import SSE
from wsgisse.testing import SSETestClient, wait_until

PAGE = Path(__file__).resolve().parent.parent / "docs" / "flask-bottle.rst"
SNIPPET = re.compile(r"^\.\. testcode::\n\n((?:    .*\n|\n)+)", re.MULTILINE)


def snippets() -> list[str]:
    found = [
        "\n".join(line[4:] for line in block.splitlines())
        for block in SNIPPET.findall(PAGE.read_text(encoding="utf-8"))
    ]
    assert len(found) == 6, "a snippet was added or removed: test it here"
    return found


def run(source: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "docs", **names}
    exec(compile(source, str(PAGE), "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


@pytest.fixture(scope="module")
def blocks() -> list[str]:
    return snippets()


def form_post(text: str) -> dict[str, Any]:
    body = urlencode({"text": text}).encode()
    return {
        "wsgi.input": io.BytesIO(body),
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
    }


def test_several_channels_are_multiplexed_and_published_by_name(blocks: list[str]) -> None:
    ns = run(blocks[0])
    app = ns["app"]
    with SSETestClient(app).stream("/events?channel=news&channel=alerts") as response:
        response.next_comment()
        reply = app.test_client().post("/news", data={"text": "hello"})
        event = response.next_event()
    assert (event.type, event.data) == ("headline", "hello")
    assert reply.get_json()["id"] in event.last_event_id


def test_rooms_are_made_on_demand_and_refused_outside_the_rule(blocks: list[str]) -> None:
    ns = run(blocks[1])
    client = SSETestClient(ns["app"])
    with client.stream("/events?channel=room-42") as response:
        response.next_comment()
        with client.stream("/rooms/42/say", method="POST", environ=form_post("hi")) as said:
            assert said.status_code == 200
        event = response.next_event()
    assert (event.type, event.data) == ("said", "hi")
    with client.stream("/events?channel=kitchen") as refused:
        assert refused.status_code == 404


def test_an_audience_reaches_only_its_user(blocks: list[str]) -> None:
    ns = run(blocks[2])
    client = SSETestClient(ns["app"])
    with client.stream("/events?user=bob") as bob, client.stream("/events?user=al") as al:
        bob.next_comment()
        al.next_comment()
        ns["tell"]("bob", "psst")
        ns["sse"].publish("everyone")
        assert [e.data for e in bob.events(2)] == ["psst", "everyone"]
        assert al.next_event().data == "everyone"


def test_a_thread_publishes_with_no_app_context(blocks: list[str]) -> None:
    ns = run(blocks[3])
    channel = ns["app"].extensions["wsgisse"].channel
    assert channel.counters()["events_published"] == 1


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    backends: list[Any] = []
    yield backends
    for backend in backends:
        backend.close()


def test_a_worker_process_publishes_through_redis_to_the_web_app(
    blocks: list[str], redis_server: RedisServer, closing: list[Any]
) -> None:
    web = Flask("web")
    web.config["WSGISSE_REDIS_URL"] = redis_server.url
    web_sse = SSE(web, channels=["news", "alerts"])
    closing.append(web_sse.channels.backend)
    ns = run(blocks[4], REDIS_URL=redis_server.url)
    closing.append(ns["sse"].channels.backend)
    with SSETestClient(web).stream("/events?channel=alerts") as response:
        response.next_comment()
        ns["on_import_finished"](3)
        event = response.next_event()
    assert (event.type, event.data) == ("import", '{"imported":3}')


def test_the_presence_list_gets_a_snapshot_first_and_counts_tabs(blocks: list[str]) -> None:
    ns = run(blocks[5])
    client = SSETestClient(ns["app"])
    first = client.stream("/events")
    assert [(e.type, e.data) for e in first.events(2)] == [
        ("presence", '["ann"]'),
        ("joined", "ann"),
    ]
    with client.stream("/events") as second:
        assert (second.next_event().type, ns["online"]["ann"]) == ("presence", 2)
    wait_until(lambda: ns["online"]["ann"] == 1)
    first.close()
    wait_until(lambda: "ann" not in ns["online"])
