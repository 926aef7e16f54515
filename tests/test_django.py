"""The Django integration against real Django, a real PostgreSQL and real servers.

The example project (``examples/django_notifications``) is served by ``gunicorn -k
gevent -w 2`` with the Redis backend, by ``gunicorn -w 1`` (where one process holds
every stream, as per-process revocation needs), and by ``manage.py runserver``. Users log
in through Django's login form; streams are opened with their session cookie.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from _django import (
    EXAMPLES_DIR,
    admin_action,
    cookie_header,
    copy_example,
    example_env,
    gunicorn_example,
    log_in,
    manage,
    notify,
    prepare_example,
    runserver,
)
from _postgres import PostgresServer
from _servers import EventStream, RedisServer, ServerProcess, free_port, python_env
from conftest import StartServer

from wsgisse import END_EVENT, MessageEvent

pytestmark = [pytest.mark.slow, pytest.mark.django]

OpenSSE = Callable[..., EventStream]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the module; each test prepares the example's tables in it."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def user_pk(postgres: PostgresServer, username: str) -> int:
    """The primary key of a user of the example."""
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute("SELECT id FROM auth_user WHERE username = %s", (username,)).fetchone()
    assert row is not None
    return int(row[0])


def notifications(stream: EventStream, count: int, timeout: float = 10) -> list[MessageEvent]:
    """The next ``count`` notification events of a stream."""
    events = stream.events(count, timeout=timeout)
    assert all(event.type == "notification" for event in events), events
    return events


def texts(events: list[MessageEvent]) -> list[str]:
    """The text of each notification."""
    return [json.loads(event.data)["text"] for event in events]


def open_as(
    open_sse: OpenSSE, server: ServerProcess, session: requests.Session, **kw: object
) -> EventStream:
    """A user's stream, subscribed (its first chunk has arrived)."""
    stream = open_sse(server.url + "/events/", cookie_header(session), **kw)
    assert stream.status == 200, stream.body
    stream.next_item()
    return stream


@pytest.fixture
def redis_env(postgres: PostgresServer, redis_server: RedisServer) -> dict[str, str]:
    """The example's environment with the Redis backend, its database prepared."""
    env = example_env(postgres.url, redis_server.url)
    prepare_example(env)
    return env


@pytest.fixture
def redis_example(redis_env: dict[str, str], start_server: StartServer) -> ServerProcess:
    """The example under gunicorn -k gevent -w 2, sharing the Redis backend."""
    return start_server(gunicorn_example(redis_env, workers=2))


def test_users_receive_their_own_and_broadcast_notifications_never_another_users(
    redis_example: ServerProcess, redis_env: dict[str, str], open_sse: OpenSSE
) -> None:
    url = redis_example.url
    alice, bob = log_in(url, "alice"), log_in(url, "bob")
    # Two streams each, so that with two workers a user's streams likely span both.
    alices = [open_as(open_sse, redis_example, alice) for _ in range(2)]
    bobs = [open_as(open_sse, redis_example, bob) for _ in range(2)]
    assert notify(alice, url, "for alice", to="alice").status_code == 202
    assert notify(bob, url, "for bob", to="bob").status_code == 202
    assert notify(bob, url, "for all").status_code == 202
    # No request at all: a management command, through Redis.
    manage(redis_env, "notify", "from the shell")
    for stream in alices:
        assert texts(notifications(stream, 3)) == ["for alice", "for all", "from the shell"]
    for stream in bobs:
        assert texts(notifications(stream, 3)) == ["for bob", "for all", "from the shell"]


def test_the_json_is_djangos_a_datetime_in_iso_format(
    redis_example: ServerProcess, open_sse: OpenSSE
) -> None:
    alice = log_in(redis_example.url, "alice")
    stream = open_as(open_sse, redis_example, alice)
    notify(alice, redis_example.url, "when?")
    (event,) = notifications(stream, 1)
    data = json.loads(event.data)
    assert data["from"] == "alice"
    assert data["at"].endswith("Z")  # DjangoJSONEncoder's form of an aware datetime


def test_a_returning_stream_gets_exactly_what_it_missed_on_any_worker(
    redis_example: ServerProcess, open_sse: OpenSSE
) -> None:
    url = redis_example.url
    alice, bob = log_in(url, "alice"), log_in(url, "bob")
    stream = open_as(open_sse, redis_example, alice)
    notify(bob, url, "seen")
    (seen,) = notifications(stream, 1)
    stream.close()
    notify(bob, url, "missed, for everyone")
    notify(bob, url, "bob's own", to="bob")
    notify(bob, url, "missed, for alice", to="alice")
    back = open_as(open_sse, redis_example, alice, last_event_id=seen.last_event_id)
    assert texts(notifications(back, 2)) == ["missed, for everyone", "missed, for alice"]
    notify(bob, url, "live again")
    assert texts(notifications(back, 1)) == ["live again"]


def test_a_revoked_user_gets_wsgisse_end_mid_stream_and_is_refused_after(
    postgres: PostgresServer, start_server: StartServer, open_sse: OpenSSE
) -> None:
    env = example_env(postgres.url)  # memory backend: one worker holds every stream
    prepare_example(env)
    server = start_server(gunicorn_example(env, workers=1))
    alice, bob, admin = (log_in(server.url, name) for name in ("alice", "bob", "admin"))
    alices = [open_as(open_sse, server, alice) for _ in range(2)]
    bobs = open_as(open_sse, server, bob)
    page = admin_action(admin, server.url, "revoke_streams", user_pk(postgres, "alice"))
    assert "2 stream(s) ended." in page
    for stream in alices:
        end = stream.next_event(timeout=10)
        assert (end.type, json.loads(end.data)) == (END_EVENT, {"reason": "revoked"})
        stream.read_to_end(timeout=10)
        assert stream.ended
    # Deactivated, so logged out: the browser's reconnection is refused for good.
    again = open_sse(server.url + "/events/", cookie_header(alice))
    assert again.status == 401
    notify(bob, server.url, "still here")
    assert texts(notifications(bobs, 1)) == ["still here"]


def test_an_open_stream_holds_no_database_connection(
    redis_example: ServerProcess, postgres: PostgresServer, open_sse: OpenSSE
) -> None:
    url = redis_example.url
    alice = log_in(url, "alice")
    baseline = postgres.connections()
    streams = [open_as(open_sse, redis_example, alice, timeout=30) for _ in range(200)]
    # Each stream loaded a session and a user from the database, then let go of it.
    assert postgres.connections() == baseline
    notify(alice, url, "to 200 streams", to="alice")
    for stream in streams:
        assert texts(notifications(stream, 1, timeout=30)) == ["to 200 streams"]
    assert postgres.connections() == baseline


def test_the_stream_request_passes_through_djangos_middleware(
    redis_example: ServerProcess, open_sse: OpenSSE
) -> None:
    alice = log_in(redis_example.url, "alice")
    stream = open_sse(redis_example.url + "/events/", cookie_header(alice))
    assert stream.headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware
    assert stream.headers["X-Frame-Options"] == "DENY"  # XFrameOptionsMiddleware
    foreign = {**cookie_header(alice), "Host": "evil.example"}
    assert open_sse(redis_example.url + "/events/", foreign).status == 400  # ALLOWED_HOSTS
    assert open_sse(redis_example.url + "/events/").status == 401  # no session: anonymous


def test_gzip_middleware_leaves_the_stream_uncompressed_and_prompt(
    redis_example: ServerProcess, open_sse: OpenSSE
) -> None:
    url = redis_example.url
    alice = log_in(url, "alice")
    gzip = {"Accept-Encoding": "gzip"}
    page = requests.get(url + "/accounts/login/", headers=gzip, timeout=10)
    assert page.headers.get("Content-Encoding") == "gzip"  # GZipMiddleware is on
    stream = open_sse(url + "/events/", {**cookie_header(alice), **gzip})
    assert stream.status == 200
    assert "Content-Encoding" not in stream.headers
    assert "no-transform" in stream.headers["Cache-Control"]
    stream.next_item()
    sent = time.monotonic()
    notify(alice, url, "not held back", to="alice")
    # Heartbeats are 15 s apart: a compressor holding the stream back would miss this.
    assert texts(notifications(stream, 1, timeout=5)) == ["not held back"]
    assert time.monotonic() - sent < 5
    assert stream.body.startswith(b": wsgisse")


def test_runserver_streams_revokes_and_says_farewell_on_autoreload(
    postgres: PostgresServer, start_server: StartServer, open_sse: OpenSSE, tmp_path: Path
) -> None:
    example = copy_example(tmp_path)
    env = example_env(postgres.url)
    prepare_example(env)
    server = start_server(runserver(example, env))
    alice, bob, admin = (log_in(server.url, name) for name in ("alice", "bob", "admin"))
    baseline = postgres.connections()
    alices, bobs = open_as(open_sse, server, alice), open_as(open_sse, server, bob)
    assert postgres.connections() == baseline  # each stream's thread let go of its own
    notify(alice, server.url, "mine", to="alice")
    notify(bob, server.url, "everyone's")
    assert texts(notifications(alices, 2)) == ["mine", "everyone's"]
    assert texts(notifications(bobs, 1)) == ["everyone's"]
    last = alices.last_event_id
    alices.close()
    notify(bob, server.url, "while alice was away")
    alices = open_as(open_sse, server, alice, last_event_id=last)
    assert texts(notifications(alices, 1)) == ["while alice was away"]
    assert texts(notifications(bobs, 1)) == ["while alice was away"]
    # The stream alice closed may not be noticed yet (no write has failed on it): 1 or 2.
    page = admin_action(admin, server.url, "revoke_streams", user_pk(postgres, "alice"))
    assert re.search(r"[12] stream\(s\) ended\.", page), page
    end = alices.next_event(timeout=10)
    assert (end.type, json.loads(end.data)) == (END_EVENT, {"reason": "revoked"})
    # A code change: the autoreloader restarts the server, whose streams get the farewell.
    views = example / "views.py"
    views.write_text(views.read_text() + "\n# changed\n")
    end = bobs.next_event(timeout=20)
    assert (end.type, json.loads(end.data)) == (END_EVENT, {"reason": "shutdown"})
    bobs.read_to_end(timeout=10)


def test_the_demo_serves_the_django_example_under_its_prefix(
    start_server: StartServer, open_sse: OpenSSE
) -> None:
    port = free_port()
    env = python_env(env={"HOST": "127.0.0.1", "PORT": str(port)})
    argv = [sys.executable, str(EXAMPLES_DIR / "demo.py")]
    server = start_server(ServerProcess(argv, port=port, name="demo.py", env=env))
    assert 'href="django/"' in requests.get(server.url + "/", timeout=10).text
    page = requests.get(server.url + "/django/", allow_redirects=False, timeout=10)
    assert page.headers["Location"] == "/django/accounts/login/?next=/django/"
    prefix = server.url + "/django"
    alice = log_in(prefix, "alice")
    index = alice.get(prefix + "/", timeout=10)
    assert 'new EventSource("/django/events/")' in index.text
    stream = open_sse(prefix + "/events/", cookie_header(alice))
    stream.next_item()
    notify(alice, prefix, "through the demo")
    assert texts(notifications(stream, 1)) == ["through the demo"]
    assert "Traceback" not in server.output()
