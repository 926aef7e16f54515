"""Every Python snippet of README.rst runs, and does what the README says it does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from wsgisse.testing import SSETestClient

README = Path(__file__).resolve().parent.parent / "README.rst"
SNIPPET = re.compile(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", re.MULTILINE)


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


@pytest.fixture(scope="module")
def blocks() -> list[str]:
    return snippets()


def test_the_plain_wsgi_quick_start_streams_published_events(blocks: list[str]) -> None:
    ns = run(blocks[0])
    with SSETestClient(ns["app"]).stream("/events") as response:
        ns["channel"].publish({"text": "hello"}, event="greeting")
        event = response.next_event()
        assert (event.type, event.data) == ("greeting", '{"text":"hello"}')
    with SSETestClient(ns["app"]).stream("/") as page:
        page.read_to_end()
        assert b"EventSource" in page.body


def test_the_flask_quick_start_publishes_what_is_said(blocks: list[str]) -> None:
    ns = run(blocks[1])
    with SSETestClient(ns["app"]).stream("/events") as response:
        assert ns["app"].test_client().post("/say", data={"text": "hi"}).status_code == 204
        event = response.next_event()
        assert (event.type, event.data) == ("said", "hi")


def test_the_flask_generator_view_counts_down(blocks: list[str]) -> None:
    ns = run(blocks[2])
    with SSETestClient(ns["app"]).stream("/countdown") as response:
        assert [event.data for event in response.read_to_end()] == ["3", "2", "1"]


def test_the_authorization_example_refuses_and_revokes(blocks: list[str]) -> None:
    ns = run(blocks[3])
    client = SSETestClient(ns["endpoint"])
    origin = {"Origin": "https://app.example"}
    with client.stream("/?channel=news", headers=origin) as anonymous:
        assert anonymous.status_code == 401
    alice = {"REMOTE_USER": "alice"}
    with client.stream("/?channel=admin", headers=origin, environ=alice) as denied:
        assert denied.status_code == 403
    with client.stream("/?channel=admin", headers=origin, environ={"REMOTE_USER": "root"}) as ok:
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-credentials"] == "true"
    with client.stream("/?channel=news", headers=origin, environ=alice) as reading:
        assert ns["endpoint"].revoke(user="alice") == 1
        assert reading.read_to_end()[-1].type == "wsgisse-end"


def test_the_testing_example_passes(blocks: list[str]) -> None:
    ns = run(blocks[0])
    run(blocks[4], ns)
    ns["test_greetings_reach_the_page"]()
