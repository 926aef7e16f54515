"""The Flask extension and stream(): in process under wsgiref's validator, then on servers.

In-process apps run through ``wsgisse.testing.SSETestClient``, which wraps them in
``wsgiref.validate.validator``, so every response is also checked against PEP 3333 (no
hop-by-hop header among them). The live tests serve ``_examples.create_flask_app`` with
gunicorn's gevent worker, and the ``stream_with_context`` view with Werkzeug's threaded
server too, where the generator runs in a thread of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import flask
import pytest
import requests
from _examples import (
    ECHO_PAUSE,
    TESTS_DIR,
    create_flask_app,
    post,
    subscribers,
)
from _servers import WSGI_SERVERS, ServerProcess
from _servers import EventStream as LiveStream
from flask import Flask, request

from wsgisse import HISTORY_LOST_EVENT, Channel, ServerSentEvent
from wsgisse.integrations.flask import SSE, stream
from wsgisse.testing import SSETestClient, wait_until


def client(app: Flask) -> SSETestClient:
    return SSETestClient(app)  # validator-wrapped


# -- the extension ---------------------------------------------------------------------------


def test_init_app_sets_the_config_defaults_and_keeps_values_already_set() -> None:
    app = Flask("defaults")
    app.config["WSGISSE_RETRY"] = 1234
    SSE(app)
    assert app.config["WSGISSE_URL"] == "/events"
    assert app.config["WSGISSE_HEARTBEAT"] == 15.0
    assert app.config["WSGISSE_HISTORY"] == 1000
    assert app.config["WSGISSE_RETRY"] == 1234


def test_the_config_keys_set_the_url_heartbeat_and_retry() -> None:
    app = create_flask_app(WSGISSE_URL="/stream", WSGISSE_HEARTBEAT=0.05, WSGISSE_RETRY=1234)
    with client(app).stream("/stream") as response:
        assert response.next_comment().text == "wsgisse"
        assert response.parser.retry == 1234
        assert response.next_comment(timeout=2).text == ""  # a heartbeat
    with client(app).stream("/events") as response:
        assert response.status.startswith("404")


def test_wsgisse_history_bounds_what_a_reconnecting_client_can_be_replayed() -> None:
    app = create_flask_app(WSGISSE_HISTORY=2)
    channel: Channel = app.extensions["wsgisse"].channel
    first = channel.publish("one")
    for data in ("two", "three", "four"):
        channel.publish(data)
    with client(app).stream("/events", headers={"Last-Event-ID": first.id or ""}) as response:
        assert response.next_event().type == HISTORY_LOST_EVENT


def test_wsgisse_url_none_registers_no_route() -> None:
    app = create_flask_app(WSGISSE_URL=None)
    assert "wsgisse_events" not in app.view_functions
    with client(app).stream("/events") as response:
        assert response.status.startswith("404")


def test_each_app_gets_a_channel_of_its_own_and_nothing_is_stored_on_the_extension() -> None:
    sse = SSE()
    first, second = Flask("first"), Flask("second")
    sse.init_app(first)
    sse.init_app(second)
    assert not hasattr(sse, "app")
    with first.app_context():
        first_channel = sse.channel
        sse.publish("to the first app only")
    with second.app_context():
        second_channel = sse.channel
    assert first_channel is first.extensions["wsgisse"].channel
    assert second_channel is second.extensions["wsgisse"].channel
    assert first_channel is not second_channel
    assert first_channel.last_event_id is not None
    assert second_channel.last_event_id is None


def test_a_channel_given_to_the_extension_is_served_by_every_app() -> None:
    shared = Channel()
    sse = SSE(channel=shared)
    first, second = Flask("first"), Flask("second")
    sse.init_app(first)
    sse.init_app(second)
    assert first.extensions["wsgisse"].channel is shared
    assert second.extensions["wsgisse"].channel is shared


def test_initialising_an_app_twice_is_refused() -> None:
    app = Flask("twice")
    SSE(app)
    with pytest.raises(RuntimeError, match="already initialised"):
        SSE().init_app(app)


def test_the_channel_of_an_app_without_the_extension_is_an_error_naming_the_fix() -> None:
    with Flask("bare").app_context(), pytest.raises(RuntimeError, match="init_app"):
        SSE().publish("nowhere")


def test_the_channel_outside_an_app_context_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="application context"):
        _ = SSE().channel


def test_a_view_of_your_own_may_take_post_at_the_stream_url() -> None:
    app = create_flask_app()

    @app.post("/events")
    def publish_here() -> dict[str, Any]:
        return {"id": SSE().publish(request.get_data(as_text=True)).id}

    with client(app).stream("/events", method="POST") as response:
        assert response.status == "200 OK"
    assert app.extensions["wsgisse"].channel.last_event_id is not None


def test_after_request_hooks_still_add_headers_to_the_stream() -> None:
    app = create_flask_app()

    @app.after_request
    def allow_any_origin(response: flask.Response) -> flask.Response:
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    with client(app).stream("/events") as response:
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"


# -- stream(): generator views ----------------------------------------------------------------


def generator_app(view: Callable[[], flask.Response], **config: Any) -> Flask:
    app = Flask("generators")
    app.config.update(config)
    app.add_url_rule("/", "view", view, methods=["GET", "POST"])
    return app


def test_a_generator_view_streams_what_it_yields_and_ends() -> None:
    def view() -> flask.Response:
        return stream(iter(["plain", {"json": [1, 2]}, ServerSentEvent("named", event="n")]))

    with client(generator_app(view)).stream("/") as response:
        assert response.status == "200 OK"
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        events = response.read_to_end()
    assert [(e.type, e.data) for e in events] == [
        ("message", "plain"),
        ("message", '{"json":[1,2]}'),
        ("n", "named"),
    ]


def test_a_stream_with_context_generator_reads_request_args() -> None:
    with client(create_flask_app()).stream("/echo", query={"word": "héllo"}) as response:
        events = response.read_to_end()
    assert [(e.type, e.data) for e in events] == [("echo", "héllo"), ("done", "")]


def test_stream_takes_its_defaults_from_the_app_config_and_its_arguments_first() -> None:
    def from_config() -> flask.Response:
        return stream(iter(["x"]))

    def from_arguments() -> flask.Response:
        return stream(iter(["x"]), retry=42, heartbeat=0.05)

    app = generator_app(from_config, WSGISSE_RETRY=777)
    app.add_url_rule("/arguments", "arguments", from_arguments)
    with client(app).stream("/") as response:
        response.read_to_end()
        assert response.parser.retry == 777
    with client(app).stream("/arguments") as response:
        response.read_to_end()
        assert response.parser.retry == 42


def test_stream_outside_a_request_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        stream(iter(["x"]))


def test_a_generator_view_answers_other_methods_with_405_and_its_generator_never_runs() -> None:
    ran: list[str] = []

    def events() -> Iterator[str]:
        try:
            ran.append("started")
            yield "x"
        finally:
            ran.append("closed")

    with client(generator_app(lambda: stream(events()))).stream("/", method="POST") as response:
        assert response.status.startswith("405")
        assert response.headers["allow"] == "GET, HEAD"
    assert ran == []


def test_disconnecting_runs_the_generators_finally_block() -> None:
    closed: list[bool] = []

    def events() -> Iterator[str]:
        try:
            while True:
                yield "tick"
        finally:
            closed.append(True)

    with client(generator_app(lambda: stream(events()))).stream("/") as response:
        response.next_event()
    wait_until(lambda: closed == [True], timeout=5)


def test_a_generator_view_whose_client_left_before_the_first_read_never_runs() -> None:
    ran: list[str] = []

    def events() -> Iterator[str]:
        ran.append("started")
        yield "x"

    generator = events()
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/"}
    environ["QUERY_STRING"] = ""
    setup_testing_defaults(environ)
    app = validator(generator_app(lambda: stream(generator)))
    body = app(environ, lambda status, headers, exc_info=None: lambda data: None)
    body.close()  # type: ignore[attr-defined] # the server never iterated it
    wait_until(lambda: generator.gi_frame is None, timeout=5)  # closed by the worker
    assert ran == []


# -- on real servers ---------------------------------------------------------------------------


def test_on_gunicorn_gevent_events_reach_the_stream_and_resume_from_last_event_id(
    serve_gunicorn: Callable[..., ServerProcess], open_sse: Callable[..., LiveStream]
) -> None:
    server = serve_gunicorn("_examples:create_flask_app()", pythonpath=[TESTS_DIR])
    stream_ = open_sse(server.url + "/events")
    assert stream_.status == 200
    assert stream_.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert stream_.headers["Cache-Control"] == "no-cache, no-transform"
    assert stream_.headers["X-Accel-Buffering"] == "no"
    wait_until(lambda: subscribers(server.url) == 1, timeout=10)
    ids = [post(server.url + "/publish?event=note", data).json()["id"] for data in "abc"]
    assert [(e.type, e.data) for e in stream_.events(3)] == [("note", d) for d in "abc"]
    assert stream_.last_event_id == ids[-1]

    resumed = open_sse(server.url + "/events", last_event_id=ids[0])
    assert [e.data for e in resumed.events(2)] == ["b", "c"]


def test_on_gunicorn_gevent_the_subscriber_count_returns_to_zero_after_a_disconnect(
    serve_gunicorn: Callable[..., ServerProcess], open_sse: Callable[..., LiveStream]
) -> None:
    server = serve_gunicorn("_examples:create_flask_app()", pythonpath=[TESTS_DIR])
    streams = [open_sse(server.url + "/events") for _ in range(3)]
    wait_until(lambda: subscribers(server.url) == 3, timeout=10)
    for stream_ in streams:
        stream_.close()
    # The heartbeat (0.2 s) is the write that tells the server each client is gone.
    wait_until(lambda: subscribers(server.url) == 0, timeout=10)


def test_on_gunicorn_gevent_a_post_to_the_stream_route_gets_405(
    serve_gunicorn: Callable[..., ServerProcess],
) -> None:
    server = serve_gunicorn("_examples:create_flask_app()", pythonpath=[TESTS_DIR])
    response = requests.post(server.url + "/events", timeout=10)
    assert response.status_code == 405


def test_on_gunicorn_gevent_the_config_given_to_the_factory_is_honoured(
    serve_gunicorn: Callable[..., ServerProcess], open_sse: Callable[..., LiveStream]
) -> None:
    server = serve_gunicorn(
        "_examples:create_flask_app(WSGISSE_URL='/updates', WSGISSE_RETRY=4321)",
        pythonpath=[TESTS_DIR],
    )
    stream_ = open_sse(server.url + "/updates")
    stream_.next_item()  # the first chunk: comment and retry
    assert stream_.retry == 4321


@pytest.mark.parametrize("server_name", ["gunicorn-gevent", "werkzeug-threaded"])
def test_on_real_servers_a_stream_with_context_generator_reads_request_args(
    server_name: str,
    start_server: Callable[[ServerProcess], ServerProcess],
    open_sse: Callable[..., LiveStream],
) -> None:
    # The generator sleeps between events, so it is still running in its worker when
    # Flask finishes the request: the request context must be the generator's own then.
    server = start_server(WSGI_SERVERS[server_name]("_examples:flask_app", pythonpath=[TESTS_DIR]))
    words = ["héllo", "wörld", "🎉"]
    for _ in range(3):
        query = urlencode([("word", w) for w in words])
        stream_ = open_sse(f"{server.url}/echo?{query}")
        events = stream_.read_to_end(timeout=10 + len(words) * ECHO_PAUSE)
        assert [(e.type, e.data) for e in events] == [
            *[("echo", w) for w in words],
            ("done", ""),
        ]
    assert "Traceback" not in server.output()


# -- the endpoint's options through the extension -------------------------------------------


def test_the_authorize_hook_runs_inside_the_request_context() -> None:
    def authorize(channels: tuple[str, ...]) -> object:
        user = request.args.get("token")
        if user is None:
            return None
        return user if user != "mallory" else False

    app = Flask("authorized")
    sse = SSE(app, authorize=authorize)
    with client(app).stream("/events") as anonymous:
        assert anonymous.status_code == 401
    with client(app).stream("/events?token=mallory") as refused:
        assert refused.status_code == 403
    with client(app).stream("/events?token=alice") as alice:
        assert alice.status_code == 200
        with app.app_context():
            assert sse.revoke(user="alice") == 1
        assert alice.read_to_end()[-1].type == "wsgisse-end"


def test_config_caps_connections_and_tells_browsers_to_come_back() -> None:
    app = Flask("capped")
    app.config["WSGISSE_MAX_CONNECTIONS"] = 1
    SSE(app)
    browser = {"Accept": "text/event-stream"}
    with client(app).stream("/events", headers=browser) as first:
        first.next_comment()
        with client(app).stream("/events", headers=browser) as second:
            assert second.status_code == 200
            assert second.read_to_end()[-1].data == '{"reason":"capacity"}'
    assert app.extensions["wsgisse"].endpoint.stats.snapshot()["refused"] == {"capacity": 1}


def test_a_hook_that_replaces_the_body_still_closes_the_stream() -> None:
    app = Flask("wrapped")
    sse = SSE(app)

    @app.after_request
    def wrap(response: flask.Response) -> flask.Response:
        encoded = response.iter_encoded()

        def passthrough() -> Iterator[bytes]:
            # As Flask-Compress streams: a for loop, which (unlike yield from) does not
            # close what it iterates when it is closed itself.
            for chunk in encoded:  # noqa: UP028
                yield chunk

        response.response = passthrough()
        response.direct_passthrough = False  # as Flask-Compress does
        return response

    # As a server does when the client has gone: it closes the body it was given.
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/events"}
    setup_testing_defaults(environ)
    body = app(environ, lambda status, headers, exc_info=None: None)
    assert next(iter(body)).startswith(b": wsgisse")
    with app.app_context():
        assert sse.channel.subscriber_count == 1
        body.close()  # type: ignore[attr-defined]
        assert sse.channel.subscriber_count == 0
