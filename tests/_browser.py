"""The real browser for the live tests: Debian's Chromium, headless, driven by Playwright.

Playwright's Python wheel carries its own driver and talks to the browser over the
DevTools protocol; it is pointed at the system's ``/usr/bin/chromium`` (``make test``
installs it with apt-get). ``playwright install`` is never run: it downloads a browser
build of its own, which this project does not use.

A missing Chromium fails the test (:class:`_servers.ProgramMissingError`), never skips it.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from _servers import ProgramMissingError
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

__all__ = [
    "CHROMIUM_ARGS",
    "PageLog",
    "chromium_executable",
    "launch_chromium",
    "new_page",
    "page_log",
    "start_event_source",
    "wait_for_js",
]

# Headless, as root, on a machine whose only network is loopback: without the
# background-networking flags Chromium keeps trying (and failing) to reach Google's
# services, and QUIC is off so that every request is plain HTTP/1.1 over TCP.
CHROMIUM_ARGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LAUNCH_TIMEOUT: Final = 30.0
# Playwright's own waits (navigation, selectors) give up after this.
PAGE_TIMEOUT: Final = 15.0
WAIT_TIMEOUT: Final = 10.0


def chromium_executable() -> str:
    """The Chromium to drive: ``$WSGISSE_CHROMIUM``, else /usr/bin/chromium.

    Raises:
        ProgramMissingError: it is not there (``make test`` installs it).
    """
    path = Path(os.environ.get("WSGISSE_CHROMIUM", "/usr/bin/chromium"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ProgramMissingError(
            f"Chromium is not installed at {path}: `make test` installs it, or run "
            "`apt-get install chromium`"
        )
    return str(path)


@contextmanager
def launch_chromium(extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """Start Playwright and a headless Chromium; close both on exit.

    Each launch gets a fresh temporary profile from Playwright, removed when it closes.
    """
    with sync_playwright() as playwright:
        browser = _launch(playwright, extra_args)
        try:
            yield browser
        finally:
            browser.close()


def _launch(playwright: Playwright, extra_args: Sequence[str]) -> Browser:
    return playwright.chromium.launch(
        executable_path=chromium_executable(),
        args=[*CHROMIUM_ARGS, *extra_args],
        headless=True,
        timeout=LAUNCH_TIMEOUT * 1000,
    )


@dataclass
class PageLog:
    """What a page said: console messages and uncaught errors, for failure messages."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"[{message.type}] {message.text}")

    def on_error(self, error: PlaywrightError) -> None:
        self.errors.append(f"{error.name}: {error.message}")

    def __str__(self) -> str:
        lines = [*self.console, *(f"[pageerror] {e}" for e in self.errors)]
        return "\n".join(lines) if lines else "(the page logged nothing)"


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context (its own cookies, cache and connections).

    The page's console and uncaught errors are recorded in a :class:`PageLog`
    (:func:`page_log`), which :func:`wait_for_js` prints when it gives up.
    """
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT * 1000)
        log = PageLog()
        page.on("console", log.on_console)
        page.on("pageerror", log.on_error)
        _page_logs[page] = log
        yield page
    finally:
        context.close()


_page_logs: weakref.WeakKeyDictionary[Page, PageLog] = weakref.WeakKeyDictionary()


def page_log(page: Page) -> PageLog:
    """The :class:`PageLog` of a page made by :func:`new_page` (empty for others)."""
    return _page_logs.get(page, PageLog())


def wait_for_js(
    page: Page,
    expression: str,
    *,
    timeout: float = WAIT_TIMEOUT,
    arg: Any = None,
    show: str | None = None,
) -> Any:
    """Wait until the JavaScript ``expression`` is truthy in ``page``; return its value.

    ``expression`` is an expression (``"window.received.length >= 3"``) or a function
    source taking ``arg``. It is polled on every animation frame.

    Raises:
        AssertionError: still falsy after ``timeout`` seconds. The message shows the
            value of ``show`` (a JavaScript expression, e.g. ``"window.received"``) at
            that moment, and the page's console.
    """
    try:
        handle = page.wait_for_function(expression, arg=arg, timeout=timeout * 1000)
    except PlaywrightTimeoutError:
        shown = ""
        if show is not None:
            try:
                shown = f"\n{show} = {json.dumps(page.evaluate(show), default=str)}"
            except PlaywrightError as exc:
                shown = f"\n{show} could not be read: {exc.message}"
        raise AssertionError(
            f"still false after {timeout} s: {expression}{shown}\n"
            f"page: {page.url}\nconsole:\n{page_log(page)}"
        ) from None
    return handle.json_value()


# Opens an EventSource and records everything it does in window.sse.
_EVENT_SOURCE_JS = """
({url, types, withCredentials}) => {
  const source = new EventSource(url, {withCredentials});
  const sse = {source, received: [], opened: 0, errors: 0, readyStates: []};
  source.onopen = () => { sse.opened += 1; };
  source.onerror = () => { sse.errors += 1; sse.readyStates.push(source.readyState); };
  const record = (e) => {
    sse.received.push({type: e.type, data: e.data, lastEventId: e.lastEventId});
  };
  for (const type of types) source.addEventListener(type, record);
  window.sse = sse;
}
"""


def start_event_source(
    page: Page,
    url: str,
    *,
    types: Sequence[str] = ("message",),
    with_credentials: bool = False,
) -> None:
    """Open an ``EventSource`` on ``url`` in ``page`` and record what it receives.

    The page must already show a document of the origin that serves ``url`` (or the
    server must allow CORS). In the page, ``window.sse`` then holds ``received`` (a list
    of ``{type, data, lastEventId}`` for the event ``types`` listened to), ``opened`` and
    ``errors`` (how often ``open`` and ``error`` fired), ``readyStates`` (the
    ``readyState`` at each error: 0 means reconnecting, 2 means closed for good) and
    ``source`` itself. Wait on them with :func:`wait_for_js`, e.g.
    ``wait_for_js(page, "window.sse.received.length >= 3", show="window.sse.received")``.
    """
    page.evaluate(
        _EVENT_SOURCE_JS,
        {"url": url, "types": list(types), "withCredentials": with_credentials},
    )
