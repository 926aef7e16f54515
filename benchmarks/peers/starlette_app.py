"""sse-starlette on uvicorn (uvloop, httptools): an asyncio.Queue per client.

Run: ``uvicorn benchmarks.peers.starlette_app:app --loop uvloop --http httptools``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks.peers._common import process_figures, token

subscribers: set[asyncio.Queue[str]] = set()


async def events(request: Request) -> EventSourceResponse:
    mailbox: asyncio.Queue[str] = asyncio.Queue()
    subscribers.add(mailbox)  # before the response starts: no publish is missed

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            while True:
                yield {"data": await mailbox.get()}
        finally:
            subscribers.discard(mailbox)

    return EventSourceResponse(stream(), ping=15)


async def publish(request: Request) -> Response:
    data = (await request.body()).decode()
    for mailbox in subscribers:
        mailbox.put_nowait(data)
    return Response(status_code=204)


async def token_stream(request: Request) -> EventSourceResponse:
    async def stream() -> AsyncIterator[dict[str, str]]:
        for seq in itertools.count(1):
            yield {"data": token(seq)}
            # Let the loop run: uvicorn's send() does not suspend while the socket takes
            # the bytes (nor after the client left), so without this the loop would never
            # see the disconnect, or any other request.
            await asyncio.sleep(0)

    return EventSourceResponse(stream())


async def stats(request: Request) -> JSONResponse:
    body: dict[str, object] = {"pid": os.getpid(), "subscribers": len(subscribers)}
    if request.query_params.get("full") == "1":
        body.update(process_figures())
    return JSONResponse(body)


app = Starlette(
    routes=[
        Route("/events", events),
        Route("/publish", publish, methods=["POST"]),
        Route("/stream", token_stream),
        Route("/stats", stats),
    ]
)
