"""flask-sse on gunicorn's gevent worker: the blueprint at /events, Redis pub/sub behind.

flask-sse subscribes every client to Redis on its own connection, so Redis does the
fan-out; its CPU and memory are counted with the server's. Needs ``REDIS_URL``.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from flask_sse import sse

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ["REDIS_URL"]
app.register_blueprint(sse, url_prefix="/events")


@app.post("/publish")
def publish() -> tuple[str, int]:
    sse.publish(request.get_data(as_text=True))
    return "", 204


@app.get("/stats")
def stats() -> object:
    # Every subscriber holds a Redis subscription, so Redis counts them for all workers.
    [(_, count)] = sse.redis.pubsub_numsub("sse")
    return jsonify(pid=os.getpid(), subscribers=count, scope="global")
