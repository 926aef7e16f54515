"""The hand-written minimal fan-out: gevent.pywsgi, one gevent queue per client.

What a developer writes in an afternoon without a library: a set of queues, a publish
that puts the frame on each, and a generator per client that takes from its queue. No
history, no slow-client policy: a client that falls behind grows its queue.

Usage: ``python -m benchmarks.peers.gevent_minimal PORT``
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import itertools
import json
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from gevent import queue
from gevent.pywsgi import WSGIHandler, WSGIServer

from benchmarks.peers._common import process_figures, token

HEADERS = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
clients: set[queue.Queue[bytes]] = set()


class NoDelayHandler(WSGIHandler):  # type: ignore[misc]
    """gevent leaves Nagle on; small events would wait ~40 ms for a delayed ACK."""

    def handle(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


def subscriber(mailbox: queue.Queue[bytes]) -> Iterator[bytes]:
    try:
        yield b": ok\n\n"
        while True:
            try:
                yield mailbox.get(timeout=15)
            except queue.Empty:
                yield b":\n\n"
    finally:
        clients.discard(mailbox)


def tokens() -> Iterator[bytes]:
    for seq in itertools.count(1):
        yield b"data: %s\n\n" % token(seq).encode()


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/events":
        mailbox: queue.Queue[bytes] = queue.Queue()
        clients.add(mailbox)
        start_response("200 OK", HEADERS)
        return subscriber(mailbox)
    if path == "/publish":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        frame = b"data: %s\n\n" % body
        for mailbox in list(clients):
            mailbox.put(frame)
        start_response("204 No Content", [])
        return []
    if path == "/stream":
        start_response("200 OK", HEADERS)
        return tokens()
    if path == "/stats":
        stats: dict[str, Any] = {"pid": os.getpid(), "subscribers": len(clients)}
        if "full=1" in environ.get("QUERY_STRING", ""):
            stats.update(process_figures())
        body = json.dumps(stats).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


if __name__ == "__main__":
    WSGIServer(
        ("127.0.0.1", int(sys.argv[1])), app, handler_class=NoDelayHandler, log=None, backlog=4096
    ).serve_forever()
