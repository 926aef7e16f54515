"""SSEApp's door policy in process: channels, authorization, CORS, caps, lifetime, stats."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

import wsgisse
from wsgisse import CORS, END_EVENT, HISTORY_LOST_EVENT, Channel, SSEApp, Stats
from wsgisse._lifecycle import _process as lifecycle_process
from wsgisse.testing import SSETestClient, StreamResponse

BROWSER = {"Accept": "text/event-stream"}


def names_app(**options: object) -> tuple[dict[str, Channel], SSEApp]:
    channels = {name: Channel(name) for name in ("news", "alerts", "sports")}
    return channels, SSEApp(channels, **options)  # type: ignore[arg-type]


def farewell_of(response: StreamResponse) -> dict[str, object]:
    events = response.read_to_end()
    assert events[-1].type == END_EVENT
    return dict(json.loads(events[-1].data))


# -- several channels over one stream -------------------------------------------------------


def test_one_stream_carries_every_channel_asked_for() -> None:
    channels, app = names_app()
    with SSETestClient(app).stream("/", query={"channel": "news"}) as single:
        channels["news"].publish("n1")
        assert single.next_event().data == "n1"
    client = SSETestClient(app)
    with client.stream("/?channel=news&channel=alerts") as response:
        channels["news"].publish("n2")
        channels["alerts"].publish("a1")
        channels["sports"].publish("not asked for")
        assert sorted(event.data for event in response.events(2)) == ["a1", "n2"]


def test_a_multiplexed_last_event_id_resumes_every_channel_exactly() -> None:
    channels, app = names_app()
    client = SSETestClient(app)
    with client.stream("/?channel=news&channel=alerts") as response:
        channels["news"].publish("n1")
        first = response.next_event()
        channels["alerts"].publish("a1")
        response.next_event()
    channels["news"].publish("n2")
    channels["alerts"].publish("a2")
    # The client last *received* n1: a1, n2 and a2 are what it missed.
    with client.stream(
        "/?channel=news&channel=alerts", headers={"Last-Event-ID": first.last_event_id}
    ) as resumed:
        assert sorted(event.data for event in resumed.events(3)) == ["a1", "a2", "n2"]
        channels["alerts"].publish("live")
        assert resumed.next_event().data == "live"


def test_a_channel_that_was_empty_is_replayed_from_its_first_event() -> None:
    channels, app = names_app()
    client = SSETestClient(app)
    with client.stream("/?channel=news&channel=sports") as response:
        channels["news"].publish("n1")
        last = response.next_event().last_event_id
    channels["sports"].publish("s1")
    with client.stream("/?channel=news&channel=sports", headers={"Last-Event-ID": last}) as again:
        assert again.next_event().data == "s1"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 400),
        ("channel=nope", 404),
        ("channel=", 400),
        ("channel=" + "x" * 129, 400),
        ("channel=a%00b", 400),
        ("channel=%FF", 400),
        ("&".join(f"channel=c{n}" for n in range(17)), 400),
    ],
)
def test_bad_channel_requests_get_a_clear_4xx(query: str, status: int) -> None:
    _, app = names_app()
    with SSETestClient(app).stream("/?" + query) as response:
        assert response.status_code == status
        response.read_to_end()
        assert response.body.endswith(b"\n")


def test_a_single_channel_endpoint_refuses_another_name() -> None:
    app = SSEApp(Channel("only"))
    with SSETestClient(app).stream("/?channel=other") as response:
        assert response.status_code == 404


# -- authorization --------------------------------------------------------------------------


def token_authorizer(environ: dict[str, object], channels: tuple[str, ...]) -> object:
    credentials = environ.get("HTTP_AUTHORIZATION")
    if credentials is None:
        return None
    user = str(credentials).removeprefix("Bearer ")
    if user == "stop":
        return 204
    return user if user != "mallory" and "alerts" not in channels else user == "admin"


@pytest.mark.parametrize(
    ("headers", "channel", "status"),
    [
        ({}, "news", 401),
        ({"Authorization": "Bearer mallory"}, "news", 403),
        ({"Authorization": "Bearer alice"}, "alerts", 403),
        ({"Authorization": "Bearer stop"}, "news", 204),
        ({"Authorization": "Bearer alice"}, "news", 200),
    ],
)
def test_the_authorize_hook_decides_who_reads_which_channel(
    headers: dict[str, str], channel: str, status: int
) -> None:
    channels, app = names_app(authorize=token_authorizer)
    with SSETestClient(app).stream("/", query={"channel": channel}, headers=headers) as response:
        assert response.status_code == status
        if status != 200:
            channels[channel].publish("secret")
            assert b"secret" not in response.body
            assert response.read_to_end() == []
    assert app.connected == 0


def test_revoking_a_user_ends_their_streams_within_a_second() -> None:
    channels, app = names_app(authorize=token_authorizer)
    client = SSETestClient(app)
    alice = client.stream("/?channel=news", headers={"Authorization": "Bearer alice"})
    bob = client.stream("/?channel=news", headers={"Authorization": "Bearer bob"})
    with alice, bob:
        started = time.monotonic()
        assert app.revoke(user="alice") == 1
        assert farewell_of(alice) == {"reason": "revoked"}
        assert time.monotonic() - started < 1.0
        channels["news"].publish("for bob")
        assert bob.next_event().data == "for bob"
    with pytest.raises(ValueError, match="user"):
        app.revoke()


def test_revoking_a_channel_ends_every_stream_reading_it() -> None:
    _, app = names_app()
    client = SSETestClient(app)
    with (
        client.stream("/?channel=news&channel=sports") as both,
        client.stream("/?channel=sports") as sports,
    ):
        assert app.revoke(channel="news") == 1
        assert farewell_of(both)["reason"] == "revoked"
        assert not sports.ended


# -- CORS -----------------------------------------------------------------------------------


def test_an_allowed_origin_gets_its_grant_with_credentials() -> None:
    cors = CORS(["https://app.example"], allow_credentials=True)
    app = SSEApp(Channel(), cors=cors)
    with SSETestClient(app).stream("/", headers={"Origin": "https://app.example"}) as response:
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["vary"] == "Origin"


def test_a_disallowed_origin_gets_no_grant_and_no_stream() -> None:
    channel = Channel()
    app = SSEApp(channel, cors=CORS(["https://app.example"]))
    with SSETestClient(app).stream("/", headers={"Origin": "https://evil.example"}) as response:
        assert response.status_code == 403
        assert "access-control-allow-origin" not in response.headers
    assert channel.subscriber_count == 0


def test_a_preflight_is_answered_for_allowed_origins_only() -> None:
    app = SSEApp(Channel(), cors=CORS(["https://app.example"], allow_headers=["Authorization"]))
    client = SSETestClient(app)
    asked = {"Access-Control-Request-Method": "GET", "Origin": "https://app.example"}
    with client.stream("/", method="OPTIONS", headers=asked) as response:
        assert response.status_code == 204
        assert "Last-Event-ID" in response.headers["access-control-allow-headers"]
        assert "Authorization" in response.headers["access-control-allow-headers"]
    with client.stream(
        "/", method="OPTIONS", headers={**asked, "Origin": "https://x.example"}
    ) as no:
        assert no.status_code == 403


def test_any_origin_never_goes_with_credentials() -> None:
    with pytest.raises(ValueError, match="credentials"):
        CORS("*", allow_credentials=True)
    with pytest.raises(ValueError, match="origin"):
        CORS(["https://app.example/"])
    app = SSEApp(Channel(), cors=CORS("*"))
    with SSETestClient(app).stream("/", headers={"Origin": "https://any.example"}) as response:
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers


# -- capacity and lifetime ------------------------------------------------------------------


def test_past_the_cap_a_browser_is_told_to_come_back_later_with_200() -> None:
    app = SSEApp(Channel(), max_connections=2, capacity_retry=20_000)
    client = SSETestClient(app)
    with client.stream("/", headers=BROWSER), client.stream("/", headers=BROWSER):
        with client.stream("/", headers=BROWSER) as refused:
            assert refused.status_code == 200
            assert farewell_of(refused) == {"reason": "capacity"}
            assert 20_000 <= (refused.parser.retry or 0) <= 40_000
        with client.stream("/") as other:
            assert other.status_code == 503
            assert other.headers["retry-after"] == "20"
    with client.stream("/", headers=BROWSER) as admitted:
        assert admitted.next_comment().text == "wsgisse"
    assert app.stats.snapshot()["refused"] == {"capacity": 2}


def test_the_per_client_cap_counts_each_address_apart() -> None:
    app = SSEApp(Channel(), max_connections_per_client=1)
    client = SSETestClient(app)
    with client.stream("/", headers=BROWSER) as first:
        with client.stream("/", headers=BROWSER) as second:
            assert farewell_of(second)["reason"] == "capacity"
        first.next_comment()


def test_a_stream_ends_after_its_lifetime_and_the_client_comes_back_at_once() -> None:
    channel = Channel()
    app = SSEApp(channel, max_lifetime=0.2, retry=100, retry_jitter=0)
    with SSETestClient(app).stream("/") as response:
        started = time.monotonic()
        assert farewell_of(response) == {"reason": "lifetime"}
        assert 0.1 <= time.monotonic() - started < 2.0
        assert response.parser.retry == 100
    assert channel.subscriber_count == 0


# -- stats ----------------------------------------------------------------------------------


def test_stats_count_streams_bytes_events_replays_and_refusals() -> None:
    stats = Stats()
    channel = Channel()
    app = SSEApp(channel, stats=stats, authorize=lambda environ, names: True)
    client = SSETestClient(app)
    with client.stream("/") as response:
        sent = channel.publish("hello")
        response.next_event()
        assert stats.snapshot()["connected"] == 1
    with client.stream("/", headers={"Last-Event-ID": str(sent.id)}):
        pass
    with client.stream("/", headers={"Last-Event-ID": "unknown"}) as lost:
        assert lost.next_event().type == HISTORY_LOST_EVENT
    with client.stream("/", method="POST"):
        pass
    snapshot = stats.snapshot()
    assert snapshot["connected"] == 0
    assert snapshot["connections"] == snapshot["disconnects"] == 3
    assert snapshot["events_published"] == 1
    assert snapshot["replays"] == 1
    assert snapshot["history_lost"] == 1
    assert snapshot["refused"] == {"bad-request": 1}
    assert isinstance(snapshot["bytes_sent"], int)
    assert snapshot["bytes_sent"] > len(b"data: hello\n")
    text = stats.prometheus()
    assert "# TYPE wsgisse_connected_clients gauge" in text
    assert "wsgisse_events_published_total 1" in text
    assert 'wsgisse_refused_total{reason="bad-request"} 1' in text


def test_the_metrics_app_serves_prometheus_text() -> None:
    stats = Stats()
    with SSETestClient(wsgisse.metrics_app(stats)).stream("/metrics") as response:
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        response.read_to_end()
        assert b"wsgisse_connections_total 0" in response.body


# -- shutdown -------------------------------------------------------------------------------


@pytest.fixture
def restore_lifecycle() -> Iterator[None]:
    yield
    lifecycle_process.shutting_down = False


@pytest.mark.usefixtures("restore_lifecycle")
def test_shutdown_ends_every_stream_with_a_jittered_farewell_and_turns_new_ones_away() -> None:
    channel = Channel()
    client = SSETestClient(SSEApp(channel, retry=1000, retry_jitter=500))
    streams = [client.stream("/") for _ in range(5)]
    channel.publish("pending")
    assert wsgisse.shutdown(timeout=5) >= 5
    for response in streams:
        events = response.read_to_end()
        assert [event.data for event in events[:-1]] == ["pending"]
        assert events[-1].type == END_EVENT
        assert 1000 <= (response.parser.retry or 0) <= 1500
        response.close()
    with client.stream("/") as late:
        assert farewell_of(late) == {"reason": "shutdown"}
    assert channel.subscriber_count == 0


def test_a_revoked_stream_never_receives_an_event_published_after_the_revocation() -> None:
    channels, app = names_app(authorize=token_authorizer)
    client = SSETestClient(app)
    with client.stream("/?channel=news", headers={"Authorization": "Bearer alice"}) as alice:
        alice.next_comment()
        app.revoke(user="alice")
        channels["news"].publish("secret")
        events = alice.read_to_end()
        assert [event.type for event in events] == [END_EVENT]


def test_audiences_follow_the_user_the_authorize_hook_named() -> None:
    channels, app = names_app(authorize=token_authorizer)
    client = SSETestClient(app)
    alice_headers = {"Authorization": "Bearer alice"}
    bob_headers = {"Authorization": "Bearer bob"}
    with (
        client.stream("/?channel=news&channel=sports", headers=alice_headers) as alice,
        client.stream("/?channel=news", headers=bob_headers) as bob,
    ):
        channels["news"].publish("for alice", audience=["alice"])
        channels["news"].publish("for everyone")
        assert [event.data for event in alice.events(2)] == ["for alice", "for everyone"]
        assert bob.next_event().data == "for everyone"
