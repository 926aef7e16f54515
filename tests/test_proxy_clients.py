"""Each client counted apart behind the shipped nginx recipe, and no forged address believed.

gunicorn (``-k gevent``) serves ``deploy_app`` with ``max_connections_per_client=2`` and,
unless a test says otherwise, ``trusted_proxies="127.0.0.1"`` (nginx's address as
gunicorn sees it). The clients connect from several loopback source addresses
(127.0.0.2, 127.0.0.3, ...: each bound before connect), so that nginx's
``$proxy_add_x_forwarded_for`` names each one as the browser of another machine would be.
A stream past a client's cap is a 200 carrying only the ``capacity`` farewell.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests
from _proxies import Certificate, caddy_proxy, make_certificate, nginx_proxy
from _servers import HOST, EventStream, ServerProcess, gunicorn_gevent, open_stream
from conftest import StartServer

APP = "tests.live.deploy_app:app"
PER_CLIENT = 2
CLIENTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
WAIT = 10.0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def streams() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed proxy
    return context


def _upstream(start_server: StartServer, trusted: str | None) -> ServerProcess:
    env = {"WSGISSE_PER_CLIENT": str(PER_CLIENT)}
    if trusted is not None:
        env["WSGISSE_TRUSTED_PROXIES"] = trusted
    return start_server(gunicorn_gevent(APP, env=env))


def _subscribers(upstream: ServerProcess) -> int:
    count: int = requests.get(upstream.url + "/stats", timeout=5).json()["subscribers"]
    return count


def _wait_for_subscribers(upstream: ServerProcess, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while (seen := _subscribers(upstream)) != count:
        assert time.monotonic() < deadline, f"{seen} subscribers, not {count}"
        time.sleep(0.05)


def _open(
    stack: ExitStack, url: str, source: str, headers: dict[str, str] | None = None
) -> EventStream:
    context = _tls() if url.startswith("https") else None
    stream = open_stream(
        url + "/events", headers, ssl_context=context, source_address=source, timeout=WAIT
    )
    stack.callback(stream.close)
    assert stream.status == 200
    return stream


def _refused_for_capacity(stream: EventStream) -> bool:
    """Whether the stream was only the capacity farewell (read to its end)."""
    events = stream.read_to_end(timeout=WAIT)
    return [(e.type, json.loads(e.data)) for e in events] == [
        ("wsgisse-end", {"reason": "capacity"})
    ]


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("nginx", marks=pytest.mark.nginx),
        pytest.param("caddy", marks=pytest.mark.caddy),
    ],
)
def test_behind_the_recipe_each_client_is_counted_apart(
    kind: str, start_server: StartServer, certificate: Certificate, streams: ExitStack
) -> None:
    upstream = _upstream(start_server, trusted="127.0.0.1")
    make = nginx_proxy if kind == "nginx" else caddy_proxy
    proxy = start_server(make(f"{HOST}:{upstream.port}", certificate))
    for client in CLIENTS:
        for _ in range(PER_CLIENT):
            _open(streams, proxy.url, client)
    _wait_for_subscribers(upstream, PER_CLIENT * len(CLIENTS))

    # One more from each: past its own cap, whatever the others hold.
    for client in CLIENTS:
        assert _refused_for_capacity(_open(streams, proxy.url, client)), client
    # A forged X-Forwarded-For sent through the proxy: nginx appends the peer's address
    # to it, Caddy replaces it; either way the client is still 127.0.0.2, at its cap.
    forged = _open(streams, proxy.url, CLIENTS[0], {"X-Forwarded-For": "127.0.0.9"})
    assert _refused_for_capacity(forged)
    # A new client still gets in.
    _open(streams, proxy.url, "127.0.0.5")
    _wait_for_subscribers(upstream, PER_CLIENT * len(CLIENTS) + 1)


@pytest.mark.nginx
def test_without_trusted_proxies_every_client_behind_the_proxy_is_the_proxy(
    start_server: StartServer, certificate: Certificate, streams: ExitStack
) -> None:
    # The negative control: what the setting fixes (the whole site capped at 2).
    upstream = _upstream(start_server, trusted=None)
    proxy = start_server(nginx_proxy(f"{HOST}:{upstream.port}", certificate))
    _open(streams, proxy.url, CLIENTS[0])
    _open(streams, proxy.url, CLIENTS[1])
    _wait_for_subscribers(upstream, 2)
    assert _refused_for_capacity(_open(streams, proxy.url, CLIENTS[2]))


def test_a_forged_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    start_server: StartServer, streams: ExitStack
) -> None:
    # Straight to gunicorn from 127.0.0.6, which is no trusted proxy: each stream claims
    # another address, and all count as 127.0.0.6.
    upstream = _upstream(start_server, trusted="127.0.0.1")
    for n in range(PER_CLIENT):
        _open(streams, upstream.url, "127.0.0.6", {"X-Forwarded-For": f"203.0.113.{n}"})
    _wait_for_subscribers(upstream, PER_CLIENT)
    third = _open(streams, upstream.url, "127.0.0.6", {"X-Forwarded-For": "203.0.113.99"})
    assert _refused_for_capacity(third)
    # From the trusted address itself the header is believed: another client.
    _open(streams, upstream.url, "127.0.0.1", {"X-Forwarded-For": "203.0.113.99"})
    _wait_for_subscribers(upstream, PER_CLIENT + 1)
