"""Follow many event streams through a server reload, as browsers do, and report.

Usage: ``python reload_follow.py URL CLIENTS LAST``

Opens CLIENTS streams to ``URL/events`` and prints ``READY`` once every one has its
response head (each is subscribed by then). Each client then reads events whose data is
``{"n": N}``; when its stream ends it waits the ``retry`` the stream last set, comes back
with its ``Last-Event-ID`` (retrying while no worker answers), and goes on, until it has
seen ``N == LAST``. Prints a JSON report: per client, every N received in order, the
farewells seen and the workers that served it. Every wait is bounded.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.event

from wsgisse import EventStreamParser, MessageEvent

DEADLINE = 90.0


def open_stream(host: str, port: int, last_event_id: str) -> tuple[socket.socket, bytes, str]:
    sock = socket.create_connection((host, port), timeout=DEADLINE)
    extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    request = f"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n"
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            sock.close()
            raise ConnectionError("closed before the head")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    pid = ""
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "x-worker-pid":
            pid = value.strip()
    return sock, rest, pid


def dechunk(raw: bytes) -> tuple[bytes, bytes]:
    data = b""
    while (line_end := raw.find(b"\r\n")) >= 0:
        size = int(raw[:line_end].split(b";")[0], 16)
        if size == 0 or len(raw) < line_end + 4 + size:
            break
        data += raw[line_end + 2 : line_end + 2 + size]
        raw = raw[line_end + 4 + size :]
    return data, raw


def follow(host: str, port: int, last: int, heads: list[int], entry: dict[str, Any]) -> None:
    parser = EventStreamParser()
    entry.update(ns=[], farewells=0, pids=[])
    deadline = time.monotonic() + DEADLINE
    first = True
    while time.monotonic() < deadline:
        try:
            sock, raw, pid = open_stream(host, port, parser.last_event_id)
        except OSError:
            gevent.sleep(0.1)
            continue
        entry["pids"].append(pid)
        if first:
            heads.append(1)
            first = False
        with sock:
            while True:
                data, raw = dechunk(raw)
                for event in parser.feed(data):
                    if not isinstance(event, MessageEvent):
                        continue
                    if event.type == "wsgisse-end":
                        entry["farewells"] += 1
                    elif event.type == "message":
                        entry["ns"].append(json.loads(event.data)["n"])
                if entry["ns"] and entry["ns"][-1] == last:
                    return
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                raw += chunk
        parser.end()
        gevent.sleep((parser.retry or 3000) / 1000)


def main() -> int:
    url, count, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    heads: list[int] = []
    entries: list[dict[str, Any]] = [{} for _ in range(count)]
    followers = [gevent.spawn(follow, host, port, last, heads, e) for e in entries]
    deadline = time.monotonic() + 30
    while len(heads) < count and time.monotonic() < deadline:
        gevent.sleep(0.05)
    print("READY", flush=True)
    gevent.joinall(followers, timeout=DEADLINE)
    print(json.dumps({"clients": entries}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
