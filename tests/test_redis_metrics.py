"""Fleet-wide metrics through Redis: one scrape of any worker sees every worker's streams.

The live test serves ``tests/live/redis_app.py`` with ``gunicorn -w 3 -k gevent``; its
``/metrics`` is ``RedisBackend.fleet_metrics_app``. Prometheus' text is parsed here
line by line, as a scraper would.
"""

from __future__ import annotations

import collections
import json
import re
import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import redis
from _servers import EventStream, RedisServer, ServerProcess
from conftest import serve_on_three_workers

import wsgisse
from wsgisse import Channel, SSEApp
from wsgisse.backends._redis_stats import STALE_AFTER, worker_name
from wsgisse.backends.redis import RedisBackend
from wsgisse.testing import SSETestClient, wait_until

if TYPE_CHECKING:
    from conftest import StartServer

pytestmark = pytest.mark.redis

READER = "wsgisse redis reader"
APP = "tests.live.redis_app:app"
_SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of a Prometheus text exposition: (name, labels, value)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match is not None, line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        out.append((match.group(1), labels, float(match.group(3))))
    return out


def total(text: str, name: str) -> float:
    return sum(value for sample, _, value in samples(text) if sample == name)


def test_the_fleet_scrape_labels_each_process_and_drops_the_gone(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url)
    news = Channel("news", backend=backend)
    endpoint = SSEApp(news)
    metrics = SSETestClient(backend.fleet_metrics_app(endpoint.stats))
    gone = json.dumps({"at": time.time() - STALE_AFTER - 1, "stats": {"connected": 7}})
    with redis.Redis.from_url(redis_server.url) as inspect:
        inspect.hset("wsgisse:@stats", "exited-host:1", gone)
        with (
            SSETestClient(endpoint).stream("/events"),
            SSETestClient(endpoint).stream("/"),
            metrics.stream("/metrics") as response,
        ):
            response.read_to_end()
            text = response.body.decode()
        assert response.status_code == 200
        assert not inspect.hexists("wsgisse:@stats", "exited-host:1")
    found = samples(text)
    assert ("wsgisse_workers", {}, 1.0) in found
    assert ("wsgisse_connected_clients", {"worker": worker_name()}, 2.0) in found
    assert ("wsgisse_connections_total", {"worker": worker_name()}, 2.0) in found
    assert "exited-host:1" not in text


def test_the_fleet_scrape_says_503_while_redis_is_down(
    redis_server: RedisServer, make_backend: Callable[..., RedisBackend]
) -> None:
    backend = make_backend(redis_server.url)
    app = backend.fleet_metrics_app(wsgisse.Stats())
    redis_server.stop()
    with SSETestClient(app).stream("/metrics") as response:
        assert response.status_code == 503
    with pytest.raises(wsgisse.BackendUnavailableError):
        backend.fleet_metrics()


# -- behind gunicorn -w 3 -k gevent ------------------------------------------------------------


def serve(start_server: StartServer, redis_url: str) -> ServerProcess:
    """gunicorn -w 3 -k gevent serving this file's app, once all three workers answer."""
    return serve_on_three_workers(start_server, APP, redis_url)


def scrape(server: ServerProcess) -> str:
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(response.read().decode())


@pytest.mark.slow
def test_under_3_workers_the_reported_connected_clients_equal_the_streams_open(
    redis_server: RedisServer,
    start_server: StartServer,
    open_sse: Callable[..., EventStream],
) -> None:
    server = serve(start_server, redis_server.url)
    streams: list[EventStream] = []
    spread: collections.Counter[str] = collections.Counter()
    while len(streams) < 30 or len(spread) < 3:
        assert len(streams) < 200, spread
        streams.append(open_sse(server.url + "/events"))
        spread[streams[-1].headers["X-Worker-Pid"]] += 1
    began = time.monotonic()
    wait_until(
        lambda: total(scrape(server), "wsgisse_connected_clients") == len(streams),
        10.0,
        f"the scrape reporting the {len(streams)} streams open",
    )
    print(
        f"{len(streams)} streams over {dict(spread)}: the scrape agreed after "
        f"{time.monotonic() - began:.2f} s"
    )
    text = scrape(server)
    per_worker = {
        labels["worker"].rsplit(":", 1)[1]: value
        for name, labels, value in samples(text)
        if name == "wsgisse_connected_clients"
    }
    assert per_worker == {pid: float(count) for pid, count in spread.items()}
    assert total(text, "wsgisse_workers") == 3
    for stream in streams[:10]:
        stream.close()
    wait_until(
        lambda: total(scrape(server), "wsgisse_connected_clients") == len(streams) - 10,
        10.0,
        "the scrape following the 10 closed streams",
    )
    assert total(scrape(server), "wsgisse_disconnects_total") == 10
