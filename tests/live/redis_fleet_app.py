"""A plain WSGI app on the Redis backend with users, for the fleet-wide revocation tests.

gunicorn serves it as ``tests.live.redis_fleet_app:app``; the Redis URL comes from
``WSGISSE_TEST_REDIS_URL``. Routes:

``/events?channel=NAME&user=NAME``
    The channels ``news`` and ``other`` (several may be named), for the user given in
    the query string. ``authorize`` consults the app's own user store, here the Redis
    set ``revoked-users``: a user in it is refused with 403, which is how an app makes a
    revocation stick (the revoked browser reconnects and is turned away). Responses
    carry ``X-Worker-Pid``.
``/revoke?user=NAME`` (or ``&channel=NAME``)
    Adds the user to ``revoked-users`` then calls ``SSEApp.revoke``, as an admin view
    would; answers ``{"ended": N}`` (the streams this worker ended itself).
``/pid``
    The worker's pid.

Run as a script, it is the admin process outside the web tier::

    python tests/live/redis_fleet_app.py REDIS_URL revoke USER [--then-publish N]

It revokes USER with ``RedisBackend(url).revoke(user=USER)`` and, once that returned,
publishes ``{"n": N}`` to ``news`` and ``other``; it prints one JSON line
``{"revoked_at": <time.time() after revoke returned>, "ids": [...]}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import redis

import wsgisse
from wsgisse.backends.redis import RedisBackend

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

URL_VARIABLE = "WSGISSE_TEST_REDIS_URL"
REVOKED_SET = "revoked-users"
CHANNELS = ("news", "other")


def create_app(redis_url: str) -> WSGIApplication:
    """The app (see the module docstring)."""
    backend = RedisBackend(redis_url)
    store = redis.Redis.from_url(redis_url)  # The app's own user store.
    channels = {name: wsgisse.Channel(name, backend=backend) for name in CHANNELS}

    def authorize(environ: WSGIEnvironment, names: tuple[str, ...]) -> str | bool | None:
        del names
        users = parse_qs(environ.get("QUERY_STRING", "")).get("user")
        if not users:
            return None
        if store.sismember(REVOKED_SET, users[0]):
            return False
        return users[0]

    endpoint = wsgisse.SSEApp(channels, authorize=authorize, heartbeat=1.0, retry=500)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        pid = ("X-Worker-Pid", str(os.getpid()))
        if path == "/events":

            def tagged(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                return start_response(status, [*headers, pid], exc_info)

            return endpoint(environ, tagged)
        if path == "/revoke":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            user = query.get("user", [None])[0]
            channel = query.get("channel", [None])[0]
            if user is not None:
                store.sadd(REVOKED_SET, user)
            body = json.dumps({"ended": endpoint.revoke(user=user, channel=channel)}).encode()
        elif path == "/pid":
            body = str(os.getpid()).encode()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain"), pid])
            return [b"not found\n"]
        start_response("200 OK", [("Content-Type", "text/plain"), pid])
        return [body]

    return app


# Nothing connects at import: the backend's reader starts with a worker's first subscriber.
app = create_app(os.environ.get(URL_VARIABLE, "redis://127.0.0.1:6379/0"))


def main(argv: list[str]) -> int:
    """The admin process: revoke a user, then publish one event to each channel."""
    url, command, user = argv[0], argv[1], argv[2]
    assert command == "revoke", command
    n = int(argv[argv.index("--then-publish") + 1]) if "--then-publish" in argv else None
    backend = RedisBackend(url)
    try:
        redis.Redis.from_url(url).sadd(REVOKED_SET, user)
        backend.revoke(user=user)
        revoked_at = time.time()
        ids = []
        if n is not None:
            ids = [wsgisse.Channel(name, backend=backend).publish({"n": n}).id for name in CHANNELS]
        print(json.dumps({"revoked_at": revoked_at, "ids": ids}), flush=True)
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
