"""One client stops reading while many others read: measure what each one sees.

Usage: ``python frozen_client.py URL READERS EVENTS SIZE``

Opens READERS streams that read everything, and one stream with a tiny receive buffer
that never reads after the response head. Once all are subscribed, publishes EVENTS
events of SIZE bytes (each carrying its publish time), one every 10 ms. Prints a JSON
report: per reader, events received and the worst publish-to-receive delay; and when
the server stopped counting the frozen client as a subscriber. Bounded in time.
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
REQUEST = b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def reader(host: str, port: int, events: int, result: dict[str, Any]) -> None:
    parser = EventStreamParser()
    worst = 0.0
    received = 0
    with socket.create_connection((host, port), timeout=DEADLINE) as sock:
        sock.sendall(REQUEST)
        while received < events:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            now = time.time()
            # Chunk framing lines are not valid SSE fields; the parser ignores them.
            for item in parser.feed(chunk):
                if isinstance(item, MessageEvent) and item.data[:1].isdigit():
                    worst = max(worst, now - float(item.data.split(" ", 1)[0]))
                    received += 1
    result.update(received=received, worst_delay=round(worst, 3))


def main() -> int:
    url, readers, events, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    frozen = socket.socket()
    frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    frozen.connect((host, port))
    frozen.sendall(REQUEST)
    results = [{} for _ in range(readers)]
    greenlets = [gevent.spawn(reader, host, port, events, r) for r in results]
    deadline = time.monotonic() + DEADLINE
    while _get(url + "/stats")["subscribers"] < readers + 1 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    started = time.monotonic()
    dropped_after = None
    for _ in range(events):
        request = urllib.request.Request(f"{url}/publish?size={size}", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=10).close()
        gevent.sleep(0.01)
        if dropped_after is None and _get(url + "/stats")["subscribers"] <= readers:
            dropped_after = round(time.monotonic() - started, 3)
    while dropped_after is None and time.monotonic() < deadline:
        if _get(url + "/stats")["subscribers"] <= readers:
            dropped_after = round(time.monotonic() - started, 3)
        gevent.sleep(0.05)
    gevent.joinall(greenlets, timeout=max(deadline - time.monotonic(), 1.0))
    frozen.close()
    print(json.dumps({"readers": results, "frozen_dropped_after": dropped_after}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
