"""What an endpoint has done: counters for dashboards and Prometheus.

Counters are updated under one native lock at the moments they change (a stream opens,
closes, is refused), never per event or per write: the bytes a stream sent are added
when it closes, and live streams are summed when the stats are read.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ._sync import native_lock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ._channel import Channel
    from ._stream import EventStream

__all__ = ["Stats", "metrics_app", "prometheus_text"]


class Stats:
    """Counters of one or more endpoints (pass the same object to share it).

    Attributes are read with :meth:`snapshot` or rendered with :meth:`prometheus`.
    """

    def __init__(self) -> None:
        self._lock = native_lock()
        self._live: weakref.WeakSet[EventStream] = weakref.WeakSet()
        self._channels: weakref.WeakSet[Channel] = weakref.WeakSet()
        self._connections = 0
        self._disconnects = 0
        self._hangups = 0
        self._bytes_closed = 0
        self._refused: dict[str, int] = {}

    def track_channel(self, channel: Channel) -> None:
        """Count this channel's events, replays and slow drops."""
        with self._lock:
            self._channels.add(channel)

    def opened(self, stream: EventStream) -> None:
        """A stream started."""
        with self._lock:
            self._live.add(stream)
            self._connections += 1

    def closed(self, stream: EventStream) -> None:
        """A stream ended (the client left or the stream was ended)."""
        with self._lock:
            if stream in self._live:
                self._live.discard(stream)
                self._disconnects += 1
                self._bytes_closed += stream.bytes_sent

    def hung_up(self) -> None:
        """A client hung up while its stream waited, and was noticed at once."""
        with self._lock:
            self._hangups += 1

    def refused(self, reason: str) -> None:
        """A stream request was refused for ``reason`` (``"capacity"``, ``"forbidden"``...)."""
        with self._lock:
            self._refused[reason] = self._refused.get(reason, 0) + 1

    def snapshot(self) -> dict[str, int | dict[str, int]]:
        """The counters now, as plain numbers.

        ``connected``: streams open now; ``connections``: streams opened so far;
        ``disconnects``: streams closed; ``hangups``: of those, clients noticed hanging up
        while their stream waited (within about a second); ``bytes_sent``; ``events_published``;
        ``replays`` (subscribers resumed from history); ``history_lost`` (resumes that
        could not be served); ``slow_dropped``; ``refused`` by reason.
        """
        with self._lock:
            live = list(self._live)
            channels = list(self._channels)
            snapshot: dict[str, int | dict[str, int]] = {
                "connected": len(live),
                "connections": self._connections,
                "disconnects": self._disconnects,
                "hangups": self._hangups,
                "bytes_sent": self._bytes_closed + sum(stream.bytes_sent for stream in live),
                "refused": dict(self._refused),
            }
        totals = {"events_published": 0, "replays": 0, "history_lost": 0, "slow_dropped": 0}
        for channel in channels:
            for name, value in channel.counters().items():
                if name in totals:
                    totals[name] += value
        snapshot.update(totals)
        return snapshot

    def prometheus(self, prefix: str = "wsgisse") -> str:
        """The counters in Prometheus' text exposition format (version 0.0.4)."""
        return prometheus_text([({}, self.snapshot())], prefix)


Snapshot = Mapping[str, "int | Mapping[str, int]"]


def prometheus_text(series: Sequence[tuple[Mapping[str, str], Snapshot]], prefix: str) -> str:
    """Snapshots (see :meth:`Stats.snapshot`) in Prometheus' text format, one series each.

    Each snapshot comes with its labels (``{"worker": "web-1:4242"}``; none for one
    process), so that the snapshots of several processes can be summed by the query.
    """
    lines: list[str] = []
    for name, kind, help_text in _METRICS:
        lines.append(f"# HELP {prefix}_{name} {help_text}")
        lines.append(f"# TYPE {prefix}_{name} {kind}")
        for labels, snapshot in series:
            if name == "refused_total":
                refused = snapshot.get("refused", {})
                assert isinstance(refused, Mapping)  # noqa: S101 - narrows the union for mypy
                lines.extend(
                    f"{prefix}_{name}{_labels({**labels, 'reason': reason})} {count}"
                    for reason, count in sorted(refused.items())
                )
            else:
                lines.append(f"{prefix}_{name}{_labels(labels)} {snapshot[_SNAPSHOT_KEY[name]]}")
    return "\n".join(lines) + "\n"


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    escaped = (
        (name, value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
        for name, value in labels.items()
    )
    return "{" + ",".join(f'{name}="{value}"' for name, value in escaped) + "}"


_METRICS = (
    ("connected_clients", "gauge", "Event streams open now."),
    ("connections_total", "counter", "Event streams opened."),
    ("disconnects_total", "counter", "Event streams closed."),
    ("hangups_total", "counter", "Clients noticed hanging up while their stream waited."),
    ("bytes_sent_total", "counter", "Bytes written to event streams."),
    ("events_published_total", "counter", "Events published to the channels served."),
    ("replays_total", "counter", "Reconnecting clients served from history."),
    ("history_lost_total", "counter", "Reconnecting clients whose Last-Event-ID was gone."),
    ("slow_clients_dropped_total", "counter", "Subscribers dropped for falling behind."),
    ("refused_total", "counter", "Stream requests refused, by reason."),
)
_SNAPSHOT_KEY = {
    "connected_clients": "connected",
    "connections_total": "connections",
    "disconnects_total": "disconnects",
    "hangups_total": "hangups",
    "bytes_sent_total": "bytes_sent",
    "events_published_total": "events_published",
    "replays_total": "replays",
    "history_lost_total": "history_lost",
    "slow_clients_dropped_total": "slow_dropped",
}


def metrics_app(stats: Stats, prefix: str = "wsgisse") -> WSGIApplication:
    """A WSGI app answering every request with ``stats`` in Prometheus' text format.

    Mount it where your scraper looks (``/metrics``); protect it like any admin page.
    """

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        del environ
        body = stats.prometheus(prefix).encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    return app
