"""Test your own event streams in process, with the real parser and bounded waits.

::

    from wsgisse.testing import SSETestClient

    def test_greeting_reaches_subscribers():
        client = SSETestClient(app)
        with client.stream("/events") as response:
            assert response.status_code == 200
            channel.publish("hi", event="greeting")
            event = response.next_event()
            assert (event.type, event.data) == ("greeting", "hi")
        assert channel.subscriber_count == 0

The app runs in a worker beside the test (a greenlet under gevent monkey-patching, a
thread otherwise), exactly as a server would run it: the body is iterated until the test
disconnects, and then ``close()`` is called by that worker. On disconnect the app's
event streams are closed at once, so a test may assert right after it that the
subscriber count is back to zero. Every wait has a timeout and raises
``TimeoutError`` rather than hang. Apps are wrapped in ``wsgiref.validate.validator`` by
default, so a breach of PEP 3333 fails the test.
"""

from __future__ import annotations

import io
import queue
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

from ._lifecycle import collecting
from ._parser import Comment, EventStreamParser, MessageEvent
from ._stream import EventStream
from ._sync import Handoff, HandoffClosed, spawn_worker

if TYPE_CHECKING:
    from types import TracebackType

    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = ["SSETestClient", "StreamResponse", "wait_until"]


def wait_until(
    predicate: Callable[[], bool], timeout: float = 5.0, message: str = "condition"
) -> None:
    """Return once ``predicate()`` is true; raise ``TimeoutError`` after ``timeout`` s.

    For state that offers nothing to wait on (a subscriber count, say); it polls every
    few milliseconds.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not reached within {timeout} s")
        time.sleep(0.005)


class StreamResponse:
    """A response being streamed from an app in process.

    Attributes:
        status: the status line, e.g. ``"200 OK"``.
        headers: the response headers, names lower-cased.
        parser: the :class:`~wsgisse.EventStreamParser` reading the body, with the
            stream's ``last_event_id`` and ``retry`` as a browser would see them.
    """

    def __init__(self, status: str, headers: list[tuple[str, str]], source: _AppRun) -> None:
        self.status = status
        self.headers = {name.lower(): value for name, value in headers}
        self.parser = EventStreamParser(keep_comments=True)
        self._run = source
        self._events: list[MessageEvent] = []
        self._comments: list[Comment] = []
        self._body = bytearray()
        self._ended = False

    @property
    def status_code(self) -> int:
        """The status as an int."""
        return int(self.status.split(" ", 1)[0])

    @property
    def comments(self) -> list[Comment]:
        """The comments read so far (heartbeats among them)."""
        return list(self._comments)

    @property
    def body(self) -> bytes:
        """Every byte read so far."""
        return bytes(self._body)

    @property
    def ended(self) -> bool:
        """Whether the app ended the stream (as opposed to the test closing it)."""
        return self._ended

    def _read(self, timeout: float) -> bool:
        """Read one batch from the app; ``False`` once the stream has ended."""
        if self._ended:
            return False
        try:
            chunk = self._run.output.get(True, timeout)
        except EOFError as end:
            self._ended = True
            self.parser.end()
            if end.__cause__ is not None:
                raise end.__cause__ from None
            return False
        self._body += chunk
        for item in self.parser.feed(chunk):
            if isinstance(item, Comment):
                self._comments.append(item)
            else:
                self._events.append(item)
        return True

    def next_event(self, timeout: float = 5.0) -> MessageEvent:
        """The next event the browser would dispatch.

        Raises:
            TimeoutError: none arrived within ``timeout`` seconds.
            EOFError: the stream ended first.
        """
        deadline = time.monotonic() + timeout
        while not self._events:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or not self._read(remaining):
                    if self._ended:
                        raise EOFError("the stream ended before another event")
                    raise TimeoutError(f"no event within {timeout} s")
            except queue.Empty:
                raise TimeoutError(f"no event within {timeout} s") from None
        return self._events.pop(0)

    def events(self, count: int, timeout: float = 5.0) -> list[MessageEvent]:
        """The next ``count`` events, all within ``timeout`` seconds.

        Raises:
            TimeoutError: fewer arrived in time (the message says how many did).
            EOFError: the stream ended first.
        """
        deadline = time.monotonic() + timeout
        received: list[MessageEvent] = []
        while len(received) < count:
            try:
                received.append(self.next_event(max(deadline - time.monotonic(), 0.0)))
            except TimeoutError:
                raise TimeoutError(
                    f"{len(received)} of {count} events within {timeout} s: {received!r}"
                ) from None
        return received

    def next_comment(self, timeout: float = 5.0) -> Comment:
        """The next comment (a heartbeat, say), within ``timeout`` seconds.

        Raises:
            TimeoutError: none arrived in time.
        """
        deadline = time.monotonic() + timeout
        while not self._comments:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or not self._read(remaining):
                    raise TimeoutError(f"no comment within {timeout} s")
            except queue.Empty:
                raise TimeoutError(f"no comment within {timeout} s") from None
        return self._comments.pop(0)

    def read_to_end(self, timeout: float = 5.0) -> list[MessageEvent]:
        """Read until the app ends the stream; return the events not yet taken.

        Raises:
            TimeoutError: the stream did not end within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self._ended:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                self._read(remaining)
            except queue.Empty:
                raise TimeoutError(f"the stream did not end within {timeout} s") from None
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        """Disconnect, as a client that goes away: the app's body is closed."""
        self._run.disconnect()

    def __enter__(self) -> StreamResponse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _AppRun:
    """One call of a WSGI app, iterated by a worker as a server would."""

    def __init__(self, app: WSGIApplication, environ: WSGIEnvironment) -> None:
        self.output = Handoff()
        self._started = Handoff()
        self._streams: list[EventStream] = []
        self._app = app
        self._environ = environ
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        spawn_worker(self._serve, name="wsgisse test client")

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        self.status, self.headers = status, headers
        return self._write

    def _write(self, data: bytes) -> None:
        self.output.put(bytes(data))

    def _serve(self) -> None:
        error: BaseException | None = None
        body: Iterable[bytes] | None = None
        try:
            with collecting(self._streams):
                body = self._app(self._environ, self._start_response)
            self._started.put(b"started")
            for chunk in body:
                if chunk:
                    self.output.put(chunk)
        except HandoffClosed:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the test to raise
            error = exc
            self._started.finish(exc)
        finally:
            # As a server does: the body is closed by whoever iterated it, on its thread.
            close = getattr(body, "close", None)
            if close is not None:
                close()
            self.output.finish(error)

    def wait_started(self, timeout: float) -> None:
        try:
            self._started.get(True, timeout)
        except queue.Empty:
            self.disconnect()
            raise TimeoutError(f"the app did not start a response within {timeout} s") from None
        except EOFError as failed:
            if failed.__cause__ is not None:
                raise failed.__cause__ from None
            raise

    def disconnect(self) -> None:
        """Leave, as a client whose connection drops.

        The app's event streams are closed at once (so its subscriptions end now); the
        worker then stops iterating and closes the body itself, as a server would after
        a failed write.
        """
        self.output.close()
        for stream in self._streams:
            stream.close()


class SSETestClient:
    """Call a WSGI app in process and read its responses as a browser would.

    Args:
        app: the WSGI application under test.
        validate: wrap it in ``wsgiref.validate.validator`` (PEP 3333 checks).
    """

    def __init__(self, app: WSGIApplication, *, validate: bool = True) -> None:
        self.app: WSGIApplication = validator(app) if validate else app

    def stream(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        environ: Mapping[str, Any] | None = None,
        timeout: float = 5.0,
    ) -> StreamResponse:
        """Open ``path`` and return the response once its status and headers are sent.

        ``path`` may hold a query string (``"/events?channel=a&channel=b"``); ``query``
        adds to it. ``environ`` sets WSGI environ keys (``{"REMOTE_USER": "alice"}``).

        Use it as a context manager, or call :meth:`StreamResponse.close`, to disconnect.

        Raises:
            TimeoutError: the app did not start a response within ``timeout`` seconds.
        """
        path, _, query_string = path.partition("?")
        if query:
            query_string = "&".join(filter(None, (query_string, urlencode(query))))
        request: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query_string,
            "wsgi.input": io.BytesIO(b""),
            **(environ or {}),
        }
        setup_testing_defaults(request)
        for name, value in (headers or {}).items():
            request["HTTP_" + name.upper().replace("-", "_")] = value.encode().decode("latin-1")
        run = _AppRun(self.app, request)
        run.wait_started(timeout)
        return StreamResponse(run.status, run.headers, run)
