"""The Flask extension and the Bottle plugin: several channels, rooms, Redis, audiences,
publishing with no request or app context, and the connection hooks.

In process through ``wsgisse.testing.SSETestClient`` first; then ``tests/live/rooms_app.py``
on gunicorn ``-k gevent`` and Werkzeug's threaded server, with and without a real
redis-server, publishing from the server, from a native thread with no context, and
from this test process as a task-queue worker would.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import bottle
import flask
import pytest
import requests
from _servers import WSGI_SERVERS, RedisServer, ServerProcess, python_env
from _servers import EventStream as LiveStream
from flask import Flask

from wsgisse import Channel, Connection, ServerSentEvent, UnknownChannelError
from wsgisse.backends.redis import RedisBackend
from wsgisse.integrations import ChannelSet
from wsgisse.integrations.bottle import SSEPlugin
from wsgisse.integrations.flask import SSE
from wsgisse.testing import SSETestClient, wait_until

StartServer = Callable[[ServerProcess], ServerProcess]
OpenSSE = Callable[..., LiveStream]


def in_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a fresh thread (no app or request context) and return its result."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # noqa: BLE001 - raised again in the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    if errors:
        raise errors[0]
    return result[0]


# -- several channels --------------------------------------------------------------------------


def flask_rooms(**options: Any) -> tuple[Flask, SSE]:
    app = Flask("rooms")
    sse = SSE(app, **{"channels": ["news", "alerts"], **options})
    return app, sse


def bottle_rooms(**options: Any) -> tuple[Any, SSEPlugin]:
    app = bottle.Bottle()
    sse = app.install(SSEPlugin(**{"channels": ["news", "alerts"], **options}))
    return app, sse


FRAMEWORKS = {"flask": flask_rooms, "bottle": bottle_rooms}


@pytest.fixture(params=sorted(FRAMEWORKS))
def rooms(request: pytest.FixtureRequest) -> Callable[..., tuple[Any, Any]]:
    """``rooms(**options)``: an app serving channels news and alerts, and its extension."""
    return FRAMEWORKS[request.param]


def test_channels_by_name_are_served_alone_and_multiplexed_and_resume(
    rooms: Callable[..., tuple[Any, Any]],
) -> None:
    app, sse = rooms()
    client = SSETestClient(app)
    with client.stream("/events?channel=alerts") as alerts:
        alerts.next_comment()
        sse.publish("n1", channel="news")
        sse.publish("a1", channel="alerts")
        assert [e.data for e in [alerts.next_event()]] == ["a1"]
    with client.stream("/events?channel=news&channel=alerts") as both:
        both.next_comment()
        sse.publish("n2", channel="news")
        sse.publish("a2", channel="alerts")
        assert [e.data for e in both.events(2)] == ["n2", "a2"]
        resume = both.parser.last_event_id
    sse.publish("n3", channel="news")
    sse.publish("a3", channel="alerts")
    headers = {"Last-Event-ID": resume}
    with client.stream("/events?channel=news&channel=alerts", headers=headers) as back:
        assert [e.data for e in back.events(2)] == ["n3", "a3"]
    with client.stream("/events") as unnamed:
        assert unnamed.status_code == 400
    with client.stream("/events?channel=sport") as unknown:
        assert unknown.status_code == 404


def test_publishing_to_no_channel_or_an_unknown_one_among_several_names_the_choices(
    rooms: Callable[..., tuple[Any, Any]],
) -> None:
    _, sse = rooms()
    with pytest.raises(UnknownChannelError, match=r"name one with channel=NAME.*news, alerts"):
        in_thread(lambda: sse.publish("where?"))
    with pytest.raises(UnknownChannelError, match="no channel 'sport'") as raised:
        in_thread(lambda: sse.publish("x", channel="sport"))
    assert raised.value.name == "sport"
    assert isinstance(raised.value, LookupError)
    with pytest.raises(UnknownChannelError):
        _ = sse.channel
    assert sse.channels.get("news").name == "news"


def test_a_rule_makes_rooms_on_demand_and_keeps_them(
    rooms: Callable[..., tuple[Any, Any]],
) -> None:
    made_by_hand = Channel("lobby")

    def rule(name: str) -> Channel | bool | None:
        if name == "lobby":
            return made_by_hand
        return name.startswith("room-") or None

    app, sse = rooms(channels=rule)
    client = SSETestClient(app)
    early = sse.publish("before anyone came", channel="room-1")  # made now, and kept
    assert sse.channels.get("room-1").last_event_id == early.id
    with client.stream("/events?channel=room-1&channel=lobby") as response:
        response.next_comment()
        sse.publish("welcome", channel="lobby")
        sse.publish("in the room", channel="room-1")
        # Several channels' events taken in one read come channel by channel.
        assert sorted(e.data for e in response.events(2)) == ["in the room", "welcome"]
    assert sse.channels.get("room-1") is sse.channels.get("room-1")
    assert sse.channels.get("lobby") is made_by_hand
    with client.stream("/events?channel=kitchen") as refused:
        assert refused.status_code == 404
    with pytest.raises(UnknownChannelError):
        sse.publish("x", channel="kitchen")


def test_a_mapping_of_channels_is_served_as_given(rooms: Callable[..., tuple[Any, Any]]) -> None:
    news = Channel("news", history=3)
    app, sse = rooms(channels={"news": news})
    assert sse.channel is news  # the only one
    with SSETestClient(app).stream("/events?channel=news") as response:
        response.next_comment()
        sse.publish("hello")
        assert response.next_event().data == "hello"


def test_channels_are_checked_when_given() -> None:
    with pytest.raises(TypeError, match="give a list of names"):
        ChannelSet("news")
    with pytest.raises(ValueError, match="named 'other'"):
        ChannelSet({"news": Channel("other")})
    with pytest.raises(TypeError, match="not both"):
        SSE(channel=Channel(), channels=["x"])
    with pytest.raises(TypeError, match="not both"):
        SSEPlugin(Channel(), channels=["x"])


# -- audiences -----------------------------------------------------------------------------------


def test_publish_with_an_audience_reaches_only_those_users(
    rooms: Callable[..., tuple[Any, Any]],
) -> None:
    if rooms is flask_rooms:
        app, sse = rooms(authorize=lambda names: flask.request.args["user"])
    else:
        app, sse = rooms(authorize=lambda names: bottle.request.query["user"])
    client = SSETestClient(app)
    with (
        client.stream("/events?channel=news&user=alice") as alice,
        client.stream("/events?channel=news&user=bob") as bob,
    ):
        alice.next_comment()
        bob.next_comment()
        sse.publish("for bob only", channel="news", audience=["bob"])
        sse.publish("for everybody", channel="news")
        assert [e.data for e in bob.events(2)] == ["for bob only", "for everybody"]
        assert alice.next_event().data == "for everybody"


# -- with no app or request context --------------------------------------------------------------


def test_flask_publishes_from_a_thread_with_no_app_context_to_the_app_it_serves() -> None:
    sse = SSE()
    app = Flask("outside")
    sse.init_app(app)
    with SSETestClient(app).stream("/events") as response:
        response.next_comment()
        sent = in_thread(lambda: sse.publish("from a worker", event="job"))
        event = response.next_event()
    assert (event.type, event.data, event.last_event_id) == ("job", "from a worker", sent.id)
    assert in_thread(lambda: sse.channel) is app.extensions["wsgisse"].channel


def test_flask_inside_an_app_context_acts_on_that_app_and_outside_on_the_last_one() -> None:
    sse = SSE()
    first, second = Flask("first"), Flask("second")
    sse.init_app(first)
    sse.init_app(second)
    with first.app_context():
        sse.publish("to the first")
    in_thread(lambda: sse.publish("to the last initialised"))
    assert first.extensions["wsgisse"].channel.last_event_id is not None
    second_channel: Channel = second.extensions["wsgisse"].channel
    assert second_channel.counters()["events_published"] == 1
    assert not hasattr(sse, "app")


def test_flask_outside_an_app_context_an_uninitialised_extension_names_both_fixes() -> None:
    with pytest.raises(RuntimeError, match=r"init_app\(app\).*init_publisher"):
        in_thread(lambda: SSE().publish("nowhere"))


def test_flask_revoke_works_outside_an_app_context_and_by_channel() -> None:
    app, sse = flask_rooms(authorize=lambda names: flask.request.args["user"])
    client = SSETestClient(app)
    with (
        client.stream("/events?channel=news&user=alice") as news,
        client.stream("/events?channel=alerts&user=bob") as alerts,
    ):
        news.next_comment()
        alerts.next_comment()
        assert in_thread(lambda: sse.revoke(channel="alerts")) == 1
        assert alerts.read_to_end()[-1].type == "wsgisse-end"
        assert in_thread(lambda: sse.revoke(user="alice")) == 1


def test_the_bottle_plugin_publishes_from_a_thread_with_no_request() -> None:
    app = bottle.Bottle()
    sse = app.install(SSEPlugin())
    with SSETestClient(app).stream("/events") as response:
        response.next_comment()
        in_thread(lambda: sse.publish("from a worker"))
        assert response.next_event().data == "from a worker"


# -- Redis settings --------------------------------------------------------------------------------


def test_no_framework_and_without_a_redis_url_no_redis_module_is_imported() -> None:
    code = (
        "import sys, wsgisse.integrations\n"
        "assert not {'flask', 'bottle'} & set(sys.modules), 'a framework was imported'\n"
        "import flask, bottle\n"
        "from wsgisse.integrations.flask import SSE\n"
        "from wsgisse.integrations.bottle import SSEPlugin\n"
        "SSE(flask.Flask('x'), channels=['a', 'b']); SSEPlugin(channels=['a'])\n"
        "assert 'wsgisse.backends.redis' not in sys.modules, 'imported'\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=python_env(), timeout=60)


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """Backends to close after the test."""
    backends: list[Any] = []
    yield backends
    for backend in backends:
        backend.close()


def test_wsgisse_redis_url_gives_the_apps_channels_one_shared_backend(
    redis_server: RedisServer, closing: list[Any]
) -> None:
    app = Flask("redis")
    app.config["WSGISSE_REDIS_URL"] = redis_server.url
    sse = SSE(app, channels=["news", "alerts"])
    backend = sse.channels.backend
    closing.append(backend)
    assert isinstance(backend, RedisBackend)
    with SSETestClient(app).stream("/events?channel=news&channel=alerts") as response:
        response.next_comment()
        in_thread(lambda: sse.publish("through redis", channel="alerts"))
        assert response.next_event().data == "through redis"
    assert sse.channels.get("news")._backend is sse.channels.get("alerts")._backend  # noqa: SLF001


def test_the_bottle_redis_url_backs_the_rooms_it_makes(
    redis_server: RedisServer, closing: list[Any]
) -> None:
    app = bottle.Bottle()
    sse = app.install(SSEPlugin(channels=lambda name: True, redis_url=redis_server.url))
    closing.append(sse.channels.backend)
    assert isinstance(sse.channels.backend, RedisBackend)
    with SSETestClient(app).stream("/events?channel=room-9") as response:
        response.next_comment()
        sse.publish("via redis", channel="room-9")
        assert response.next_event().data == "via redis"


def test_init_publisher_without_redis_warns_that_events_stay_in_this_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sse = SSE(channels=["news"])
    channels = sse.init_publisher()
    assert "reach only this process" in caplog.text
    sent = in_thread(lambda: sse.publish("local", channel="news"))
    assert channels.get("news").last_event_id == sent.id


# -- the connection hooks through the integrations ---------------------------------------------


def test_flask_hooks_run_in_the_request_then_in_an_app_context() -> None:
    seen: list[tuple[str, str]] = []

    def on_connect(connection: Connection) -> ServerSentEvent:
        seen.append(("connect", flask.request.args["name"]))
        return ServerSentEvent({"hello": flask.request.args["name"]}, event="snapshot")

    def on_disconnect(connection: Connection) -> None:
        seen.append(("disconnect", flask.current_app.name))

    app = Flask("hooked")
    sse = SSE(app, on_connect=on_connect, on_disconnect=on_disconnect)
    with SSETestClient(app).stream("/events?name=ann") as response:
        snapshot = response.next_event()
        sse.publish("live")
        assert response.next_event().data == "live"
    assert (snapshot.type, snapshot.data) == ("snapshot", '{"hello":"ann"}')
    wait_until(lambda: len(seen) == 2)
    assert seen == [("connect", "ann"), ("disconnect", "hooked")]


def test_bottle_hooks_see_the_request_and_run_once() -> None:
    seen: list[str] = []

    def on_connect(connection: Connection) -> ServerSentEvent:
        seen.append("connect " + bottle.request.query["name"])
        return ServerSentEvent("state", event="snapshot")

    app = bottle.Bottle()
    sse = app.install(
        SSEPlugin(on_connect=on_connect, on_disconnect=lambda c: seen.append("disconnect"))
    )
    old = sse.publish("old")
    sse.publish("replayed")
    headers = {"Last-Event-ID": old.id or ""}
    with SSETestClient(app).stream("/events?name=bo", headers=headers) as response:
        assert [e.data for e in response.events(2)] == ["state", "replayed"]
    wait_until(lambda: len(seen) == 2)
    assert seen == ["connect bo", "disconnect"]


# -- on real servers -------------------------------------------------------------------------

ROOMS = {"flask": "tests.live.rooms_app:flask_app", "bottle": "tests.live.rooms_app:bottle_app"}


def post(url: str) -> Any:
    response = requests.post(url, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize("server_name", ["gunicorn-gevent", "werkzeug-threaded"])
@pytest.mark.parametrize("framework", sorted(ROOMS))
def test_on_real_servers_rooms_multiplex_audiences_and_context_free_publishes_arrive(
    framework: str, server_name: str, start_server: StartServer, open_sse: OpenSSE
) -> None:
    server = start_server(WSGI_SERVERS[server_name](ROOMS[framework]))
    url = server.url
    bob = open_sse(url + "/events?channel=news&channel=room-7&user=bob")
    alice = open_sse(url + "/events?channel=room-7&user=alice")
    bob.next_item()
    alice.next_item()
    post(f"{url}/publish?channel=news&data=n1")
    post(f"{url}/publish?channel=room-7&data=secret&audience=bob")
    later = post(f"{url}/publish-later?channel=room-7&data=from-a-thread")["id"]
    assert [e.data for e in bob.events(3)] == ["n1", "secret", "from-a-thread"]
    alice_event = alice.next_event()
    assert (alice_event.data, alice_event.last_event_id) == ("from-a-thread", later)
    resume = bob.last_event_id
    bob.close()
    post(f"{url}/publish?channel=news&data=n2")
    back = open_sse(url + "/events?channel=news&channel=room-7&user=bob", last_event_id=resume)
    assert back.next_event().data == "n2"
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("server_name", ["gunicorn-gevent", "werkzeug-threaded"])
@pytest.mark.parametrize("framework", sorted(ROOMS))
def test_on_real_servers_the_hooks_send_the_snapshot_first_and_count_each_close_once(
    framework: str, server_name: str, start_server: StartServer, open_sse: OpenSSE
) -> None:
    server = start_server(WSGI_SERVERS[server_name](ROOMS[framework]))
    url = server.url
    old = post(f"{url}/publish?channel=news&data=old")["id"]
    post(f"{url}/publish?channel=news&data=missed")
    stream = open_sse(f"{url}/events?channel=news&user=cy&snapshot=1", last_event_id=old)
    snapshot = stream.next_event()
    assert (snapshot.type, snapshot.data) == ("snapshot", '{"channels":["news"],"user":"cy"}')
    assert stream.next_event().data == "missed"  # the replay follows the snapshot
    post(f"{url}/publish?channel=news&data=live")
    assert stream.next_event().data == "live"
    plain = open_sse(f"{url}/events?channel=news")  # no snapshot asked: none sent
    plain.next_item()
    post(f"{url}/publish?channel=news&data=next")
    assert plain.next_event().data == "next"

    def closed() -> list[str]:
        return list(requests.get(url + "/stats?channel=news", timeout=10).json()["closed"])

    stream.close()
    wait_until(lambda: len(closed()) == 1, timeout=15)
    plain.close()
    wait_until(lambda: len(closed()) == 2, timeout=15)
    assert len(set(closed())) == 2


@pytest.mark.parametrize("framework", sorted(ROOMS))
def test_on_gunicorn_a_separate_process_publishes_through_the_configured_redis(
    framework: str,
    redis_server: RedisServer,
    start_server: StartServer,
    open_sse: OpenSSE,
    closing: list[Any],
) -> None:
    env = {"REDIS_URL": redis_server.url}
    server = start_server(WSGI_SERVERS["gunicorn-gevent"](ROOMS[framework], env=env))
    stats = requests.get(server.url + "/stats?channel=news", timeout=10).json()
    assert stats["backend"] == "RedisBackend"
    stream = open_sse(server.url + "/events?channel=news&channel=room-3")
    stream.next_item()
    wait_until(
        lambda: (
            requests.get(server.url + "/stats?channel=news", timeout=10).json()["subscribers"] == 1
        ),
        timeout=10,
    )
    # This test process is the task-queue worker: the same config, no app, no request.
    if framework == "flask":
        worker = SSE(channels=lambda name: True)
        channels = worker.init_publisher({"WSGISSE_REDIS_URL": redis_server.url})
        closing.append(channels.backend)
        publish = worker.publish
    else:
        plugin = SSEPlugin(channels=lambda name: True, redis_url=redis_server.url)
        closing.append(plugin.channels.backend)
        publish = plugin.publish
    sent = [in_thread(lambda d=d: publish(d, channel="room-3")).id for d in ("one", "two")]
    events = stream.events(2)
    assert [e.data for e in events] == ["one", "two"]
    assert events[-1].last_event_id.endswith(sent[-1])


def test_init_publisher_reaches_an_apps_own_channel_by_the_apps_name(
    redis_server: RedisServer, closing: list[Any]
) -> None:
    web = Flask("shop")
    web.config["WSGISSE_REDIS_URL"] = redis_server.url
    closing.append(SSE(web).channels.backend)
    worker = SSE()
    with pytest.raises(TypeError, match=r"app_name=app\.name"):
        worker.init_publisher({"WSGISSE_REDIS_URL": redis_server.url})
    channels = worker.init_publisher({"WSGISSE_REDIS_URL": redis_server.url}, app_name="shop")
    closing.append(channels.backend)
    with SSETestClient(web).stream("/events") as response:
        response.next_comment()
        in_thread(lambda: worker.publish("restocked", event="stock"))
        event = response.next_event()
    assert (event.type, event.data) == ("stock", "restocked")


def test_ready_made_channels_keep_their_backend_and_no_redis_client_is_made() -> None:
    app = Flask("given")
    app.config["WSGISSE_REDIS_URL"] = "redis://127.0.0.1:1/0"
    sse = SSE(app, channels={"news": Channel("news")})
    assert sse.channels.backend is None
    plugin = SSEPlugin(Channel(), redis_url="redis://127.0.0.1:1/0")
    assert plugin.channels.backend is None
