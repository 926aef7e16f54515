"""What the browser client's scenarios (``tests/live/client_harness.js``) must have seen.

Shared by the Chromium tests (``test_client_browser.py``) and the Firefox test
(``test_client_firefox.py``): the same assertions on the same scenarios in both browsers.
"""

from __future__ import annotations

from typing import Any


def check_bad_gateway(seen: dict[str, Any]) -> None:
    """502s from the proxy, then recovery: every event once, in order."""
    assert seen["received"] == ["before", "in-flight", "while-down", "after"], seen
    assert seen["readyState"] == 1
    assert seen["opens"] == 2
    assert seen["errors"] >= 3  # One per failed attempt, as a native EventSource fires.
    assert seen["nativeReadyState"] == 2  # The control: a bare EventSource gave up.


def check_capacity(seen: dict[str, Any]) -> None:
    """Refused for capacity: it came back as told until it got in."""
    assert seen["received"] == ["c1"], seen
    assert len(seen["ends"]) >= 2
    assert set(seen["ends"]) == {"capacity"}
    assert seen["closedReason"] == "closed"  # Closed by the scenario at the end, not before.


def check_revoked(seen: dict[str, Any]) -> None:
    """Revoked: the source stops, and never asks again."""
    assert seen["received"] == ["r1"], seen
    assert seen["ends"] == ["revoked"]
    assert (seen["readyState"], seen["closedReason"]) == (2, "revoked")
    assert seen["requestsAtClose"] == seen["requestsLater"] == 1


def check_no_content(seen: dict[str, Any]) -> None:
    """A 204 stops it for good, after one request."""
    assert (seen["readyState"], seen["closedReason"]) == (2, "no-content"), seen
    assert seen["requests"] == 1
    assert seen["opens"] == 0


def check_history_lost(seen: dict[str, Any]) -> None:
    """The history-lost callback ran once, and the stream went on."""
    assert [info["lastEventId"] for info in seen["lost"]] == ["no-such-id"], seen
    assert seen["received"] == ["h1"]


def check_multiplexed(seen: dict[str, Any]) -> None:
    """Two channels over one stream: each event's channel, one composite id."""
    assert seen["received"] == ["m1", "m2", "m3"], seen
    # The first event of a fresh stream whose channels already held events cannot be
    # told apart (the stream sends no starting position); every later one is.
    assert seen["channels"][0] in ("alerts", None)
    assert seen["channels"][1:] == ["news", "alerts"]
    assert set(seen["positions"]) == {"news", "alerts"}


def check_worker_fallback(seen: dict[str, Any]) -> None:
    """A shared worker that cannot start: the tab shares by leader election instead."""
    assert seen["received"] == ["f1"], seen
    assert seen["sharing"] == "lock"


def check_tabs(tabs: list[dict[str, Any]], expected: list[str], sharing: str) -> None:
    """Every tab received exactly ``expected``: nothing lost, nothing repeated."""
    for number, tab in enumerate(tabs):
        assert tab["received"] == expected, (number, tab)
        assert tab["sharing"] == sharing
        assert tab["readyState"] == 1
