"""Open many event streams to one server with gevent, publish, and check every stream.

Usage: ``python many_clients.py URL CLIENTS EVENTS [PUBLISH_QUERY]``

Opens CLIENTS streams to ``URL/events``, waits (bounded) until the server reports them
all subscribed, asks it to publish EVENTS events (from a native OS thread, or as the
optional query string of ``/publish`` says: ``publishers=8&via=thread``), and reads every
stream until it has EVENTS events. Prints a JSON report: how many clients got exactly
``0..EVENTS-1`` in order (or, for several publishers, every event once, all clients in
one same order). Every wait is bounded; the process exits by itself.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json
import socket
import sys
import time
import urllib.request
from urllib.parse import urlsplit

import gevent

from wsgisse import EventStreamParser, MessageEvent

DEADLINE = 90.0


def read_stream(host: str, port: int, events: int, ready: list[int]) -> list[str] | bool:
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            head += chunk
        head, body = head.split(b"\r\n\r\n", 1)
        chunked = b"chunked" in head.lower()
        ready.append(1)
        parser = EventStreamParser()
        received: list[str] = []
        raw = body
        while len(received) < events:
            if chunked:
                # Decode complete chunks from raw; keep the rest.
                while True:
                    line_end = raw.find(b"\r\n")
                    if line_end < 0:
                        break
                    size = int(raw[:line_end].split(b";")[0], 16)
                    if len(raw) < line_end + 2 + size + 2:
                        break
                    data = raw[line_end + 2 : line_end + 2 + size]
                    raw = raw[line_end + 2 + size + 2 :]
                    received += [e.data for e in parser.feed(data) if isinstance(e, MessageEvent)]
            else:
                received += [e.data for e in parser.feed(raw) if isinstance(e, MessageEvent)]
                raw = b""
            if len(received) >= events:
                break
            chunk = sock.recv(65536)
            if not chunk:
                return False
            raw += chunk
        return received[:events]


def main() -> int:
    url, clients, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    publish_query = sys.argv[4] if len(sys.argv) > 4 else "via=thread"
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    ready: list[int] = []
    readers = [gevent.spawn(read_stream, host, port, events, ready) for _ in range(clients)]
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/stats", timeout=10) as response:
            if json.load(response)["subscribers"] >= clients:
                break
        gevent.sleep(0.05)
    started = time.monotonic()
    request = urllib.request.Request(
        f"{url}/publish?count={events}&{publish_query}", method="POST", data=b""
    )
    urllib.request.urlopen(request, timeout=30).close()
    gevent.joinall(readers, timeout=max(deadline - time.monotonic(), 1.0))
    results = [reader.value if reader.successful() else False for reader in readers]
    if "publishers=" in publish_query:
        orders = [tuple(r) for r in results if isinstance(r, list)]
        publishers = int(publish_query.split("publishers=")[1].split("&")[0])
        expected = sorted(f"{n % publishers}-{n}" for n in range(events))
        ok = [order for order in orders if sorted(order) == expected]
        report_orders = len(set(ok))
    else:
        ok = [r for r in results if r == [str(n) for n in range(events)]]
        report_orders = 1 if ok else 0
    print(
        json.dumps(
            {
                "clients": clients,
                "connected": len(ready),
                "complete_in_order": len(ok),
                "distinct_orders": report_orders,
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    )
    gevent.killall(readers, timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
