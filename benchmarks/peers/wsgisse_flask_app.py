"""The wsgisse bench app as a Flask app, served by ``gunicorn -k gevent``.

The same routes as ``wsgisse_app`` (``/events``, ``POST /publish``, ``/stream``,
``/stats``), through ``wsgisse.integrations.flask``: the setup most users run, whose
stream must keep the fast path (it reaches the server unchanged, ``direct_passthrough``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import flask

from benchmarks.peers._common import process_figures, token
from wsgisse.integrations.flask import SSE, stream

app = flask.Flask("wsgisse_bench")
app.config["WSGISSE_HEARTBEAT"] = float(os.environ.get("BENCH_HEARTBEAT", "15"))
sse = SSE(app)


def _tokens() -> Iterator[str]:
    for seq in itertools.count(1):
        yield token(seq)


@app.post("/publish")
def publish() -> tuple[str, int]:
    sse.publish(flask.request.get_data(as_text=True))
    return "", 204


@app.get("/stream")
def tokens() -> flask.Response:
    return stream(_tokens())


@app.get("/stats")
def stats() -> dict[str, Any]:
    figures: dict[str, Any] = {
        "pid": os.getpid(),
        "subscribers": sse.channel.subscriber_count,
        "scope": "process",
    }
    if flask.request.args.get("full") == "1":
        figures.update(process_figures())
    return figures
