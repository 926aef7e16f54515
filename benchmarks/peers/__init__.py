"""The servers under test: one small, idiomatic app per library, all with the same routes.

Every app answers ``GET /events`` (the event stream), ``POST /publish`` (the request body,
100 bytes carrying the publisher's timestamp, becomes one event for every subscriber),
``GET /stream`` (one client, a generator view writing events as fast as it can: a token
stream) where the library has such a view, and ``GET /stats`` (``{"pid": ...,
"subscribers": N}``; ``?full=1`` adds the process' greenlets, threads, fds and RSS).
"""
