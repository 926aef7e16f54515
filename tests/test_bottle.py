"""The Bottle plugin: in process under wsgiref's validator, then on every real server.

In-process apps run through ``wsgisse.testing.SSETestClient``, which wraps them in
``wsgiref.validate.validator``, so every response is also checked against PEP 3333 (no
hop-by-hop header among them). The live tests serve ``_examples:bottle_app`` with
gunicorn's gevent worker, gevent's WSGIServer and Werkzeug's threaded server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import bottle
import pytest
import requests
from _examples import (
    ECHO_PAUSE,
    RETRY,
    TESTS_DIR,
    create_bottle_app,
    post,
    subscribers,
)
from _servers import EventStream as LiveStream
from _servers import ServerProcess

from wsgisse import HISTORY_LOST_EVENT, Channel, ServerSentEvent
from wsgisse.integrations.bottle import SSEPlugin
from wsgisse.testing import SSETestClient, wait_until


def plugin_of(app: Any) -> SSEPlugin:
    plugins = [p for p in app.plugins if isinstance(p, SSEPlugin)]
    assert len(plugins) == 1
    return plugins[0]


def client(app: Any) -> SSETestClient:
    return SSETestClient(app)  # validator-wrapped


# -- the stream route -------------------------------------------------------------------------


def test_the_plugin_options_set_the_path_heartbeat_and_retry() -> None:
    app = create_bottle_app(path="/stream", heartbeat=0.05, retry=1234)
    with client(app).stream("/stream") as response:
        assert response.next_comment().text == "wsgisse"
        assert response.parser.retry == 1234
        assert response.next_comment(timeout=2).text == ""  # a heartbeat
    with client(app).stream("/events") as response:
        assert response.status.startswith("404")


def test_a_channel_given_to_the_plugin_is_the_one_served() -> None:
    channel = Channel(history=2)
    app = create_bottle_app(channel=channel)
    first = channel.publish("one")
    for data in ("two", "three", "four"):
        channel.publish(data)
    assert plugin_of(app).channel is channel
    with client(app).stream("/events", headers={"Last-Event-ID": first.id or ""}) as response:
        assert response.next_event().type == HISTORY_LOST_EVENT


def test_path_none_registers_no_route() -> None:
    app = create_bottle_app(path=None)
    with client(app).stream("/events") as response:
        assert response.status.startswith("404")


def test_a_second_wsgisse_plugin_on_one_app_is_refused() -> None:
    app = bottle.Bottle()
    app.install(SSEPlugin())
    with pytest.raises(bottle.PluginError, match="already installed"):
        app.install(SSEPlugin(path="/other"))


def test_one_plugin_installed_on_two_apps_serves_its_channel_on_both() -> None:
    sse = SSEPlugin()
    first, second = bottle.Bottle(), bottle.Bottle()
    first.install(sse)
    second.install(sse)
    with client(first).stream("/events"), client(second).stream("/events"):
        wait_until(lambda: sse.channel.subscriber_count == 2)


def test_headers_set_by_a_hook_are_kept() -> None:
    app = create_bottle_app()

    @app.hook("after_request")
    def allow_any_origin() -> None:
        bottle.response.set_header("Access-Control-Allow-Origin", "*")

    with client(app).stream("/events") as response:
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"


# -- sse=True routes ----------------------------------------------------------------------------


def test_an_sse_route_streams_what_its_generator_yields_and_reads_the_request() -> None:
    app = create_bottle_app()
    with client(app).stream("/echo", query={"word": "héllo"}) as response:
        assert response.status == "200 OK"
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.parser.retry is None  # nothing read yet
        events = response.read_to_end()
        assert response.parser.retry == RETRY
    assert [(e.type, e.data) for e in events] == [("echo", "héllo"), ("done", "")]


def test_an_sse_route_may_return_any_iterable_of_events_or_data() -> None:
    app = bottle.Bottle()
    app.install(SSEPlugin())

    @app.get("/mixed", sse=True)
    def mixed() -> list[object]:
        return ["plain", {"json": [1, 2]}, ServerSentEvent("named", event="n")]

    with client(app).stream("/mixed") as response:
        events = response.read_to_end()
    assert [(e.type, e.data) for e in events] == [
        ("message", "plain"),
        ("message", '{"json":[1,2]}'),
        ("n", "named"),
    ]


def test_an_sse_route_may_still_answer_with_an_http_error() -> None:
    app = bottle.Bottle()
    app.install(SSEPlugin())

    @app.get("/private", sse=True)
    def private() -> Any:
        if bottle.request.query.token != "secret":  # noqa: S105 - a test value
            return bottle.HTTPError(403, "no")
        return iter(["welcome"])

    with client(app).stream("/private") as response:
        assert response.status.startswith("403")
    with client(app).stream("/private", query={"token": "secret"}) as response:
        assert [e.data for e in response.read_to_end()] == ["welcome"]


def test_routes_without_sse_and_routes_that_skip_the_plugin_are_left_alone() -> None:
    app = bottle.Bottle()
    app.install(SSEPlugin())

    @app.get("/plain")
    def plain() -> str:
        return "just text"

    @app.get("/skipped", sse=True, skip=["wsgisse"])
    def skipped() -> str:
        return "not a stream"

    for path, body in (("/plain", b"just text"), ("/skipped", b"not a stream")):
        with client(app).stream(path) as response:
            assert response.headers["content-type"].startswith("text/html")
            response.read_to_end()
            assert response.body == body


def test_disconnecting_from_an_sse_route_runs_the_generators_finally_block() -> None:
    app = bottle.Bottle()
    app.install(SSEPlugin())
    closed: list[bool] = []

    @app.get("/ticks", sse=True)
    def ticks() -> Iterator[str]:
        try:
            while True:
                yield "tick"
        finally:
            closed.append(True)

    with client(app).stream("/ticks") as response:
        response.next_event()
    wait_until(lambda: closed == [True], timeout=5)


# -- on real servers -----------------------------------------------------------------------------


def test_on_every_server_both_routes_stream_and_clients_are_released(
    serve_wsgi: Callable[..., ServerProcess], open_sse: Callable[..., LiveStream]
) -> None:
    server = serve_wsgi("_examples:bottle_app", pythonpath=[TESTS_DIR])
    stream = open_sse(server.url + "/events")
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert stream.headers["X-Accel-Buffering"] == "no"
    wait_until(lambda: subscribers(server.url) == 1, timeout=10)
    ids = [post(server.url + "/publish?event=note", data).json()["id"] for data in "abc"]
    assert [(e.type, e.data) for e in stream.events(3)] == [("note", d) for d in "abc"]

    resumed = open_sse(server.url + "/events", last_event_id=ids[0])
    assert [e.data for e in resumed.events(2)] == ["b", "c"]

    words = ["héllo", "wörld", "🎉"]
    echo = open_sse(f"{server.url}/echo?{urlencode([('word', w) for w in words])}")
    assert [(e.type, e.data) for e in echo.read_to_end(timeout=10 + 3 * ECHO_PAUSE)] == [
        *[("echo", w) for w in words],
        ("done", ""),
    ]

    stream.close()
    resumed.close()
    # The heartbeat (0.2 s) is the write that tells the server each client is gone.
    wait_until(lambda: subscribers(server.url) == 0, timeout=10)
    assert requests.post(server.url + "/events", timeout=10).status_code == 405


def test_the_authorize_hook_reads_the_bottle_request_and_revoke_ends_streams() -> None:
    def authorize(channels: tuple[str, ...]) -> object:
        user = bottle.request.query.get("user")
        if not user:
            return None
        return user if user != "mallory" else False

    app = bottle.Bottle()
    plugin = app.install(SSEPlugin(authorize=authorize))
    client = SSETestClient(app)
    with client.stream("/events") as anonymous:
        assert anonymous.status_code == 401
    with client.stream("/events?user=mallory") as refused:
        assert refused.status_code == 403
    with client.stream("/events?user=alice") as alice:
        alice.next_comment()
        assert plugin.endpoint.revoke(user="alice") == 1
        assert alice.read_to_end()[-1].type == "wsgisse-end"
    assert plugin.endpoint.stats.snapshot()["refused"] == {"unauthorized": 1, "forbidden": 1}
