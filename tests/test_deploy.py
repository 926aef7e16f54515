"""The deployment recipes in deploy/, proven in a real browser.

Headless Chromium opens ten EventSources to one origin. Served directly by gunicorn over
HTTP/1.1, only six connect (the browser's cap of six connections per origin); the other
four wait, and so does every other request of the page. Through the nginx and Caddy
recipes, over HTTP/2 and TLS, all ten connect and receive, each event within a second of
its publication, and the stream is neither compressed nor held in a buffer.

The proxies run the recipe files themselves (see ``_proxies.py``); the certificate is made
for the test, and only the Chromium of this module trusts it.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from _browser import CHROMIUM_ARGS, LAUNCH_TIMEOUT, chromium_executable, new_page, wait_for_js
from _proxies import (
    DEPLOY_DIR,
    Certificate,
    HttpsStream,
    caddy_proxy,
    make_certificate,
    negotiated_protocol,
    nginx_proxy,
)
from _servers import (
    HOST,
    REPO_ROOT,
    ServerProcess,
    find_program,
    free_port,
    gunicorn_gevent,
    python_env,
)
from playwright.sync_api import Browser, Page

APP = "tests.live.deploy_app:app"
SOURCES = 10
# Chromium's (and Firefox's and Safari's) connections per origin over HTTP/1.1.
BROWSER_CONNECTION_LIMIT = 6
# An event must reach every EventSource within this long of its publication.
DELIVERY_BOUND_MS = 1000.0
# Publish-to-receive rounds timed through each proxy.
ROUNDS = 5

StartServer = Callable[[ServerProcess], ServerProcess]

PROXIES = [
    pytest.param("nginx", marks=pytest.mark.nginx),
    pytest.param("caddy", marks=pytest.mark.caddy),
]

# Opens `n` EventSources on `url` and records, for each, whether it opened, its errors and
# every message with the time it arrived (performance.now() and the wall clock).
_OPEN_SOURCES_JS = """
({n, url}) => {
  const states = [];
  const sources = [];
  for (let i = 0; i < n; i++) {
    const state = {opened: false, errors: 0, received: []};
    const source = new EventSource(url);
    source.onopen = () => { state.opened = true; };
    source.onerror = () => { state.errors += 1; };
    source.onmessage = (e) => {
      const at = performance.now();
      state.received.push({data: e.data, at, wall: performance.timeOrigin + at});
    };
    states.push(state);
    sources.push(source);
  }
  window.sse = {states, sources};
}
"""

_OPEN_COUNT = "window.sse.sources.filter((s) => s.readyState === EventSource.OPEN).length"
_SUMMARY = """
window.sse.sources.map((s, i) => ({
  readyState: s.readyState,
  opened: window.sse.states[i].opened,
  errors: window.sse.states[i].errors,
  received: window.sse.states[i].received.map((r) => r.data),
}))
"""

# Publishes a 1-byte event from the page (a POST through the same origin) and times, with
# performance.now(), until each EventSource has it. Gives up after five seconds.
_TIME_PUBLISH_JS = """
async ({data}) => {
  const states = window.sse.states;
  const before = states.map((s) => s.received.length);
  const start = performance.now();
  const response = await fetch("/publish?data=" + data, {method: "POST"});
  if (!response.ok) throw new Error("publish answered " + response.status);
  const deadline = start + 5000;
  while (states.some((s, i) => s.received.length <= before[i]) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return states.map((s, i) => {
    const got = s.received[before[i]];
    return got === undefined ? null : {data: got.data, ms: got.at - start};
  });
}
"""

# Reads the stream with fetch(), as the page's own code could, and reports its headers,
# when its first bytes came, and how long a 1-byte event took from publish to arrival.
_FETCH_STREAM_JS = """
async () => {
  const controller = new AbortController();
  const start = performance.now();
  const response = await fetch("/events", {signal: controller.signal});
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const readUntil = async (needle, ms) => {
    const deadline = performance.now() + ms;
    while (!text.includes(needle)) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const timer = new Promise((resolve) => setTimeout(() => resolve(null), left));
      const chunk = await Promise.race([reader.read(), timer]);
      if (chunk === null || chunk.done) return text.includes(needle);
      text += decoder.decode(chunk.value, {stream: true});
    }
    return true;
  };
  const headers = Object.fromEntries(response.headers.entries());
  const preamble = await readUntil("\\n\\n", 2000);
  const firstBytesMs = performance.now() - start;
  const published = performance.now();
  await fetch("/publish?data=z", {method: "POST"});
  const delivered = await readUntil("data: z\\n", 2000);
  const deliveryMs = performance.now() - published;
  controller.abort();
  return {status: response.status, headers, preamble, firstBytesMs, delivered, deliveryMs, text};
}
"""

_NAVIGATION_JS = """
(() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return {
    protocol: nav.nextHopProtocol,
    encoded: nav.encodedBodySize,
    decoded: nav.decodedBodySize,
  };
})()
"""

# Measured figures, written to the terminal at the end of the module's run.
MEASURED: dict[str, Any] = {}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made for this module."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_browser(browser: Browser, certificate: Certificate) -> Iterator[Browser]:
    """A headless Chromium that trusts the module's certificate, and only that one.

    Launched from the session's Playwright (one Playwright per process), with
    ``--ignore-certificate-errors-spki-list`` naming exactly the certificate's key:
    every other certificate is checked as usual.
    """
    chromium = browser.browser_type.launch(
        executable_path=chromium_executable(),
        args=[
            *CHROMIUM_ARGS,
            f"--ignore-certificate-errors-spki-list={certificate.spki_sha256}",
        ],
        headless=True,
        timeout=LAUNCH_TIMEOUT * 1000,
    )
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def tls_page(tls_browser: Browser) -> Iterator[Page]:
    """A page of :func:`tls_browser` in a fresh context (its own connections)."""
    with new_page(tls_browser) as page:
        yield page


@pytest.fixture(scope="module", autouse=True)
def _report_measurements(request: pytest.FixtureRequest) -> Iterator[None]:
    """Show what the module measured in the run's output, where CI logs keep it."""
    yield
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if not MEASURED or reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_sep("-", "measured by test_deploy.py")
        for name, value in MEASURED.items():
            reporter.write_line(f"{name}: {value}")


def _upstream(start_server: StartServer, **env: str) -> ServerProcess:
    return start_server(gunicorn_gevent(APP, env=env))


def _proxy(kind: str, upstream: ServerProcess, certificate: Certificate) -> ServerProcess:
    address = f"{HOST}:{upstream.port}"
    if kind == "nginx":
        return nginx_proxy(address, certificate)
    return caddy_proxy(address, certificate)


def _subscribers(upstream: ServerProcess) -> int:
    count: int = requests.get(upstream.url + "/stats", timeout=5).json()["subscribers"]
    return count


def _wait_for_subscribers(upstream: ServerProcess, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _subscribers(upstream)) != count:
        assert time.monotonic() < deadline, f"{seen} subscribers, not {count}, after {timeout} s"
        time.sleep(0.05)


def _open_sources(page: Page, count: int) -> None:
    page.evaluate(_OPEN_SOURCES_JS, {"n": SOURCES, "url": "/events"})
    wait_for_js(page, f"{_OPEN_COUNT} >= {count}", show=_SUMMARY)


# -- HTTP/1.1: six connections per origin ----------------------------------------------------


def test_over_http1_only_six_of_ten_event_sources_connect_and_the_rest_wait(
    start_server: StartServer, browser_page: Page
) -> None:
    upstream = _upstream(start_server)
    page = browser_page
    page.goto(upstream.url + "/")
    _open_sources(page, BROWSER_CONNECTION_LIMIT)
    _wait_for_subscribers(upstream, BROWSER_CONNECTION_LIMIT)
    page.wait_for_timeout(1000)  # time for a seventh to connect, were it allowed to

    summary = page.evaluate(_SUMMARY)
    states = [source["readyState"] for source in summary]
    assert states.count(1) == BROWSER_CONNECTION_LIMIT, summary  # OPEN
    assert states.count(0) == SOURCES - BROWSER_CONNECTION_LIMIT, summary  # CONNECTING
    assert not any(source["errors"] for source in summary), summary
    assert _subscribers(upstream) == BROWSER_CONNECTION_LIMIT

    # Only the six receive, each within the bound.
    published_at = time.time() * 1000
    requests.post(upstream.url + "/publish?data=x", timeout=5).raise_for_status()
    wait_for_js(
        page,
        f"window.sse.states.filter((s) => s.received.length > 0).length"
        f" >= {BROWSER_CONNECTION_LIMIT}",
        show=_SUMMARY,
    )
    page.wait_for_timeout(300)
    receipts = page.evaluate("window.sse.states.map((s) => s.received)")
    got = [r for r in receipts if r]
    assert len(got) == BROWSER_CONNECTION_LIMIT, receipts
    latencies = [r[0]["wall"] - published_at for r in got]
    assert max(latencies) < DELIVERY_BOUND_MS, latencies
    MEASURED["direct HTTP/1.1: EventSources open of 10"] = states.count(1)
    MEASURED["direct HTTP/1.1: publish-to-receive ms (max of 6)"] = round(max(latencies), 1)

    # Any other request of the page waits too: here a fetch of /stats.
    outcome = page.evaluate(
        """() => Promise.race([
            fetch("/stats").then(() => "answered"),
            new Promise((resolve) => setTimeout(() => resolve("waiting"), 1000)),
        ])"""
    )
    assert outcome == "waiting"

    # Closing one stream frees a connection: a waiting EventSource takes it (after the
    # fetch), so the waiting ones are queued, not failed.
    page.evaluate("window.sse.sources[0].close()")
    wait_for_js(
        page,
        f"window.sse.states.filter((s) => s.opened).length >= {BROWSER_CONNECTION_LIMIT + 1}",
        show=_SUMMARY,
    )
    assert page.evaluate(_OPEN_COUNT) == BROWSER_CONNECTION_LIMIT


# -- HTTP/2 through the recipes --------------------------------------------------------------


@pytest.mark.parametrize("kind", PROXIES)
def test_through_the_proxy_over_http2_all_ten_event_sources_receive_within_a_second(
    kind: str, start_server: StartServer, certificate: Certificate, tls_page: Page
) -> None:
    upstream = _upstream(start_server)
    proxy = start_server(_proxy(kind, upstream, certificate))
    page = tls_page
    page.goto(proxy.url + "/")
    assert page.evaluate(_NAVIGATION_JS)["protocol"] == "h2"

    _open_sources(page, SOURCES)
    _wait_for_subscribers(upstream, SOURCES)
    summary = page.evaluate(_SUMMARY)
    assert [source["readyState"] for source in summary] == [1] * SOURCES, summary

    latencies: list[float] = []
    for round_ in range(ROUNDS):
        data = str(round_)  # one byte
        receipts = page.evaluate(_TIME_PUBLISH_JS, {"data": data})
        assert all(r is not None and r["data"] == data for r in receipts), receipts
        latencies += [r["ms"] for r in receipts]
    assert max(latencies) < DELIVERY_BOUND_MS, latencies
    MEASURED[f"{kind} HTTP/2: EventSources open of 10"] = len(summary)
    MEASURED[f"{kind} HTTP/2: publish-to-receive ms (median, max of {len(latencies)})"] = (
        round(statistics.median(latencies), 1),
        round(max(latencies), 1),
    )


@pytest.mark.nginx
def test_past_the_http2_stream_limit_event_sources_wait_again(
    start_server: StartServer, certificate: Certificate, tls_page: Page
) -> None:
    # The recipe's http2_max_concurrent_streams (128) lowered to 8: of ten
    # EventSources, eight open and two wait, as six and four do over HTTP/1.1.
    limit = 8
    upstream = _upstream(start_server)
    proxy = start_server(
        nginx_proxy(
            f"{HOST}:{upstream.port}",
            certificate,
            edits={"http2_max_concurrent_streams 128;": f"http2_max_concurrent_streams {limit};"},
        )
    )
    page = tls_page
    page.goto(proxy.url + "/")
    _open_sources(page, limit)
    _wait_for_subscribers(upstream, limit)
    page.wait_for_timeout(1000)  # time for a ninth to connect, were it allowed to
    states = [source["readyState"] for source in page.evaluate(_SUMMARY)]
    assert states.count(1) == limit, states
    assert states.count(0) == SOURCES - limit, states


@pytest.mark.parametrize("kind", PROXIES)
def test_the_proxy_neither_compresses_nor_buffers_the_stream(
    kind: str, start_server: StartServer, certificate: Certificate, tls_page: Page
) -> None:
    upstream = _upstream(start_server)
    proxy = start_server(_proxy(kind, upstream, certificate))
    page = tls_page
    page.goto(proxy.url + "/")
    # The recipe compresses pages: this one came compressed, so compression is on...
    navigation = page.evaluate(_NAVIGATION_JS)
    assert navigation["protocol"] == "h2"
    assert 0 < navigation["encoded"] < navigation["decoded"], navigation

    # ...and the stream, asked for with the browser's Accept-Encoding, is left alone.
    result = page.evaluate(_FETCH_STREAM_JS)
    headers = result["headers"]
    assert result["status"] == 200
    assert headers["content-type"].startswith("text/event-stream"), headers
    assert "content-encoding" not in headers, headers
    assert "no-transform" in headers["cache-control"], headers
    assert result["preamble"], result
    assert result["delivered"], result
    assert result["deliveryMs"] < DELIVERY_BOUND_MS, result
    MEASURED[f"{kind}: stream first bytes ms, 1-byte event via fetch() ms"] = (
        round(result["firstBytesMs"], 1),
        round(result["deliveryMs"], 1),
    )


@pytest.mark.nginx
def test_a_buffering_nginx_delivers_nothing_so_the_checks_above_would_catch_it(
    start_server: StartServer, certificate: Certificate
) -> None:
    # The recipe's stream location with its buffering switched back on, for a stream
    # without X-Accel-Buffering (which wsgisse sends, and nginx would otherwise obey).
    upstream = _upstream(start_server)
    buffering = start_server(
        nginx_proxy(
            f"{HOST}:{upstream.port}",
            certificate,
            edits={
                "proxy_buffering off;": (
                    "proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;"
                )
            },
        )
    )
    recipe = start_server(nginx_proxy(f"{HOST}:{upstream.port}", certificate))
    with (
        HttpsStream(buffering.url + "/events") as held,
        HttpsStream(recipe.url + "/events") as passed,
    ):
        assert passed.read_until(b"\r\n\r\n", timeout=5)  # the headers
        _wait_for_subscribers(upstream, 2)
        requests.post(upstream.url + "/publish?data=x", timeout=5).raise_for_status()
        assert passed.read_until(b"data: x\n", timeout=DELIVERY_BOUND_MS / 1000)
        assert not held.read_until(b"data: x\n", timeout=1.5)
        assert held.received == b"", "not even the headers should have come"


@pytest.mark.nginx
def test_a_heartbeat_within_the_proxy_read_timeout_keeps_a_stream_open(
    start_server: StartServer, certificate: Certificate
) -> None:
    # The recipe with a 1 s read timeout: a stream whose heartbeat (0.3 s) is shorter
    # stays open; one that stays silent longer (heartbeat 30 s) is cut.
    beating = _upstream(start_server, WSGISSE_HEARTBEAT="0.3")
    silent = _upstream(start_server, WSGISSE_HEARTBEAT="30")
    edits = {"proxy_read_timeout 120s;": "proxy_read_timeout 1s;"}
    kept = start_server(nginx_proxy(f"{HOST}:{beating.port}", certificate, edits=edits))
    cut = start_server(nginx_proxy(f"{HOST}:{silent.port}", certificate, edits=edits))
    with HttpsStream(kept.url + "/events") as alive, HttpsStream(cut.url + "/events") as idle:
        assert alive.read_until(b": wsgisse\n", timeout=5)
        assert idle.read_until(b": wsgisse\n", timeout=5)
        started = time.monotonic()
        assert not idle.read_until(b"never sent", timeout=5)
        assert idle.ended, "nginx should have closed the silent stream"
        cut_after = time.monotonic() - started
        assert cut_after < 3, cut_after
        MEASURED["nginx, proxy_read_timeout 1s: silent stream cut after s"] = round(cut_after, 2)
        time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
        requests.post(beating.url + "/publish?data=x", timeout=5).raise_for_status()
        assert alive.read_until(b"data: x\n", timeout=DELIVERY_BOUND_MS / 1000)
        assert not alive.ended


# -- deploy/run-local.sh ---------------------------------------------------------------------


def _group_gone(server: ServerProcess, timeout: float) -> bool:
    """Wait until no live process is left in ``server``'s process group."""
    deadline = time.monotonic() + timeout
    while server.group_members():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("kind", PROXIES)
def test_run_local_serves_the_demo_through_the_proxy_and_ctrl_c_stops_everything(
    kind: str, start_server: StartServer
) -> None:
    port, app_port = free_port(), free_port()
    script = ServerProcess(
        [find_program("bash"), str(DEPLOY_DIR / "run-local.sh"), kind],
        port=port,
        name=f"run-local.sh {kind}",
        env=python_env(
            env={"PORT": str(port), "APP_PORT": str(app_port), "PYTHON": sys.executable}
        ),
        cwd=REPO_ROOT,
        ready=lambda server: negotiated_protocol(server.port) == "h2",
        scheme="https",
    )
    start_server(script)
    wait_until = time.monotonic() + 10
    while f"https://{HOST}:{port}/" not in script.output():
        assert time.monotonic() < wait_until, script.output_tail()
        time.sleep(0.05)
    with HttpsStream(f"https://{HOST}:{port}/clock/events") as stream:
        assert stream.read_until(b"\r\n\r\n", timeout=5)
        head = bytes(stream.received).split(b"\r\n\r\n")[0].lower()
        assert b"content-type: text/event-stream" in head
        assert b"content-encoding" not in head
        assert stream.read_until(b"data: ", timeout=5), stream.received  # the clock ticks

    # Ctrl-C (SIGINT to the script) stops the proxy and gunicorn, and the script exits.
    os.kill(script.pid, signal.SIGINT)
    assert _group_gone(script, timeout=15), script.output_tail()
    assert script.stop() == 0, script.output_tail()
    assert "stopped" in script.output()


def test_run_local_refuses_an_unknown_proxy() -> None:
    result = subprocess.run(
        [find_program("bash"), str(DEPLOY_DIR / "run-local.sh"), "apache"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "usage" in result.stderr.lower()


# -- the documentation shows what deploy/ ships ----------------------------------------------


def _literal_blocks(text: str) -> list[str]:
    """The bodies of the ``.. code-block::`` directives of an reStructuredText page."""
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if line.startswith(".. code-block::"):
            body = []
            for following in lines[index + 1 :]:
                if following.strip() and not following.startswith("   "):
                    break
                body.append(following[3:])
            blocks.append("\n".join(body).strip("\n").rstrip())
    return blocks


def _without_header_comment(text: str) -> str:
    """The text after its opening comment (the lines up to the first blank one)."""
    lines = text.splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines).strip("\n").rstrip()


@pytest.mark.parametrize("path", ["nginx/wsgisse.conf", "caddy/Caddyfile"])
def test_the_deployment_guide_shows_each_recipe_as_shipped(path: str) -> None:
    guide = (REPO_ROOT / "docs" / "deployment.rst").read_text()
    recipe = _without_header_comment((DEPLOY_DIR / path).read_text())
    assert recipe in _literal_blocks(guide), f"docs/deployment.rst does not show {path}"


def test_every_file_in_deploy_is_described_in_its_readme() -> None:
    readme = (DEPLOY_DIR / "README.rst").read_text()
    shipped = sorted(str(p.relative_to(DEPLOY_DIR)) for p in DEPLOY_DIR.rglob("*") if p.is_file())
    missing = [name for name in shipped if name != "README.rst" and name not in readme]
    assert not missing, missing
