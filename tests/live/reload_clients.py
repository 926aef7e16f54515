"""Hold many event streams through a server's shutdown or reload, and report each one.

Usage: ``python reload_clients.py URL CLIENTS reconnect|once``

Opens CLIENTS streams to ``URL/events``, publishes one event once all are subscribed,
prints ``READY`` on a line of its own when every stream has it, and then, while the test
signals the server, reads every stream to its end. Each client records the farewell it
got, then (with ``reconnect``) waits its ``retry`` and comes back with its
``Last-Event-ID``, recording the first event of the new stream and the worker that
served it. Prints a
JSON report. Every wait is bounded; the process exits by itself.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json
import socket
import sys
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import gevent

from wsgisse import EventStreamParser, MessageEvent

DEADLINE = 60.0


def _dechunk(raw: bytes) -> tuple[bytes, bytes, bool]:
    """Complete chunks' data, the rest of ``raw``, and whether the last chunk came."""
    data = b""
    while True:
        line_end = raw.find(b"\r\n")
        if line_end < 0:
            return data, raw, False
        size = int(raw[:line_end].split(b";")[0], 16)
        if size == 0:
            return data, b"", True
        if len(raw) < line_end + 4 + size:
            return data, raw, False
        data += raw[line_end + 2 : line_end + 2 + size]
        raw = raw[line_end + 4 + size :]


class Stream:
    def __init__(self, host: str, port: int, last_event_id: str | None = None) -> None:
        self.sock = socket.create_connection((host, port), timeout=DEADLINE)
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        self.sock.sendall(
            f"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the head")
            head += chunk
        head, self.raw = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "")
        self.parser = EventStreamParser()
        self.ended = False

    def events(self) -> list[MessageEvent]:
        """Read once; the events that completed."""
        if not self.raw:
            chunk = self.sock.recv(65536)
            if not chunk:
                self.ended = True
                return []
            self.raw = chunk
        if self.chunked:
            data, self.raw, last = _dechunk(self.raw)
            self.ended = self.ended or last
        else:
            data, self.raw = self.raw, b""
        return [e for e in self.parser.feed(data) if isinstance(e, MessageEvent)]

    def read_until(self, predicate: Any) -> list[MessageEvent]:
        seen: list[MessageEvent] = []
        while not self.ended:
            seen += self.events()
            if predicate(seen):
                break
        return seen

    def close(self) -> None:
        self.sock.close()


def client(
    host: str, port: int, heard: list[int], report: list[dict[str, Any]], reconnect: bool
) -> None:
    first = Stream(host, port)
    old_pid = first.headers.get("x-worker-pid")
    before = first.read_until(lambda seen: len(seen) >= 1)
    heard.append(1)
    rest = first.read_until(lambda seen: False)
    first.close()
    farewell = [e for e in rest if e.type == "wsgisse-end"]
    entry: dict[str, Any] = {
        "first_events": [e.data for e in before],
        "farewell": farewell[0].data if farewell else None,
        "retry": first.parser.retry,
        "old_pid": old_pid,
    }
    report.append(entry)
    if not reconnect:
        return
    # As a browser does: wait the reconnection time the stream last set, then come back.
    gevent.sleep((first.parser.retry or 3000) / 1000)
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            again = Stream(host, port, first.parser.last_event_id)
        except OSError:
            gevent.sleep(0.1)
            continue
        entry["new_pid"] = again.headers.get("x-worker-pid")
        entry["status"] = again.status
        entry["resumed_with"] = [e.type for e in again.read_until(lambda seen: len(seen) >= 1)]
        again.close()
        break


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def main() -> int:
    url, count, reconnect = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "reconnect"
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    heard: list[int] = []
    report: list[dict[str, Any]] = []
    clients = [gevent.spawn(client, host, port, heard, report, reconnect) for _ in range(count)]
    deadline = time.monotonic() + DEADLINE
    while _get(url + "/stats")["subscribers"] < count and time.monotonic() < deadline:
        gevent.sleep(0.05)
    request = urllib.request.Request(url + "/publish?data=before", method="POST", data=b"")
    urllib.request.urlopen(request, timeout=10).close()
    while len(heard) < count and time.monotonic() < deadline:
        gevent.sleep(0.05)
    print("READY", flush=True)
    gevent.joinall(clients, timeout=max(deadline - time.monotonic(), 1.0))
    print(json.dumps({"clients": count, "reports": report}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
