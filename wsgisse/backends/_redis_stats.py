"""Fleet-wide metrics for the Redis backend: every process' stats, one scrape.

Prometheus scrapes one address, and under ``gunicorn -w N`` that reaches one worker
at a time. So each process that reports writes its :class:`~wsgisse.Stats` snapshot to
the hash ``{prefix}@stats`` (field ``host:pid``, value JSON with the time written), about
once a second from its reader's loop and at each scrape it answers. A scrape reads the
whole hash and renders one series per process, labelled ``worker="host:pid"``; entries
not refreshed for :data:`STALE_AFTER` seconds (a worker that exited) are left out and
deleted.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from .._errors import BackendUnavailableError
from .._stats import prometheus_text
from .._sync import native_lock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import redis
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .._stats import Snapshot, Stats

__all__ = ["PUSH_EVERY", "STALE_AFTER", "StatsReporter", "metrics_wsgi_app"]

#: Seconds between two writes of a process' snapshot by its reader.
PUSH_EVERY = 1.0
#: A process' snapshot older than this is dropped from the scrape: its process is gone
#: (or cannot reach Redis). Several pushes, and more than a reader's longest XREAD.
STALE_AFTER = 10.0

_STATS_SUFFIX = "@stats"


def worker_name() -> str:
    """This process' label: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class StatsReporter:
    """The stats objects this process reports, and how to write and read them."""

    def __init__(self, prefix: str) -> None:
        self.key = f"{prefix}{_STATS_SUFFIX}"
        self._lock = native_lock()
        self._stats: list[Stats] = []
        self._last_push = 0.0

    def add(self, stats: Stats) -> None:
        """Report ``stats`` too (several are summed into this process' series)."""
        with self._lock:
            if all(known is not stats for known in self._stats):
                self._stats.append(stats)

    @property
    def active(self) -> bool:
        """Whether any stats are reported."""
        return bool(self._stats)

    def snapshot(self) -> dict[str, Any]:
        """The sum of this process' stats' snapshots."""
        with self._lock:
            reported = list(self._stats)
        total: dict[str, Any] = {"refused": {}}
        for stats in reported:
            for name, value in stats.snapshot().items():
                if isinstance(value, dict):
                    for reason, count in value.items():
                        total["refused"][reason] = total["refused"].get(reason, 0) + count
                else:
                    total[name] = total.get(name, 0) + value
        return total

    def push(self, client: redis.Redis, *, due_only: bool) -> None:
        """Write this process' snapshot (``due_only``: if :data:`PUSH_EVERY` has passed).

        Raises:
            redis.RedisError: Redis could not take it.
        """
        now = time.monotonic()
        if not self._stats or (due_only and now - self._last_push < PUSH_EVERY):
            return
        self._last_push = now
        entry = {"at": time.time(), "stats": self.snapshot()}
        client.hset(self.key, worker_name(), json.dumps(entry, separators=(",", ":")))

    def fleet(self, client: redis.Redis) -> list[tuple[dict[str, str], Snapshot]]:
        """Every live process' snapshot, labelled, in worker order; deletes stale ones.

        Raises:
            redis.RedisError: Redis could not be read.
        """
        raw: Any = client.hgetall(self.key)
        now = time.time()
        series, stale = [], []
        for field, value in sorted(raw.items()):
            name = field.decode() if isinstance(field, bytes) else str(field)
            try:
                entry = json.loads(value)
                at, stats = float(entry["at"]), entry["stats"]
            except (ValueError, KeyError, TypeError):
                stale.append(name)
                continue
            if now - at > STALE_AFTER:
                stale.append(name)
            else:
                series.append(({"worker": name}, stats))
        if stale:
            client.hdel(self.key, *stale)
        return series

    def render(self, client: redis.Redis, prefix: str) -> str:
        """Push this process' snapshot, then the whole fleet's in Prometheus' text format.

        Raises:
            redis.RedisError: Redis could not be reached.
        """
        self.push(client, due_only=False)
        series = self.fleet(client)
        lines = [
            f"# HELP {prefix}_workers Processes whose stats are in this scrape.",
            f"# TYPE {prefix}_workers gauge",
            f"{prefix}_workers {len(series)}",
        ]
        return "\n".join(lines) + "\n" + prometheus_text(series, prefix)


def metrics_wsgi_app(render: Callable[[], str]) -> WSGIApplication:
    """A WSGI app answering with ``render()`` as Prometheus text; 503 when it raises."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        del environ
        try:
            body, status = render().encode(), "200 OK"
        except BackendUnavailableError as exc:
            body, status = f"{exc}\n".encode(), "503 Service Unavailable"
        start_response(
            status,
            [
                ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return app
