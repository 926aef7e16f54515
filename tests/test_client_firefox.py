"""wsgisse.js in Firefox ESR (Debian's ``firefox-esr``, headless), with no driver.

Firefox opens ``/firefox``, whose page runs every scenario of
``tests/live/client_harness.js`` by itself (iframes of one origin stand in for tabs: they
share SharedWorkers, Web Locks and BroadcastChannels as tabs do) and posts what it saw
to ``/report``; the test waits for it and makes the assertions of the Chromium tests
(``_client_checks.py``). One Firefox run for all of them: it is heavy on a small machine.
It starts with a fresh profile (``-profile``, ``--no-remote``) and is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _client_checks import (
    check_bad_gateway,
    check_capacity,
    check_history_lost,
    check_multiplexed,
    check_no_content,
    check_revoked,
    check_tabs,
    check_worker_fallback,
)
from _servers import LIVE_DIR, ServerProcess, find_program, gunicorn_gevent

pytestmark = [pytest.mark.firefox, pytest.mark.slow]

# Every scenario together takes about 15 s on an idle machine.
REPORT_TIMEOUT = 100.0
STOP_TIMEOUT = 10.0

# A quiet, light profile: no first-run pages, updates, telemetry or connectivity checks
# (the machine's only network is loopback), few content processes.
PREFERENCES = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "extensions.update.enabled": False,
    "network.proxy.type": 0,
    "fission.autostart": False,
    "dom.ipc.processCount": 2,
}


def _get(server: ServerProcess, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with gunicorn_gevent("client_app:app", pythonpath=[LIVE_DIR]) as server:
        yield _run_firefox(server, tmp_path_factory.mktemp("firefox-profile"))


def _run_firefox(server: ServerProcess, profile: Path) -> dict[str, Any]:
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFERENCES.items())
    )
    log = (profile / "firefox.log").open("wb")
    firefox = subprocess.Popen(
        [
            find_program("firefox-esr", package="firefox-esr"),
            "--headless",
            "--no-remote",
            "-profile",
            str(profile),
            server.url + "/firefox",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Its own process group: its content processes stop with it.
        env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"},
    )
    try:
        deadline = time.monotonic() + REPORT_TIMEOUT
        while (found := _get(server, "/report")) is None:
            if firefox.poll() is not None or time.monotonic() > deadline:
                log.flush()
                output = (profile / "firefox.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"Firefox posted no report (exit {firefox.returncode}):\n{output}")
            time.sleep(0.2)
        report: dict[str, Any] = found
        return report
    finally:
        _stop(firefox)
        log.close()


def _stop(firefox: subprocess.Popen[bytes]) -> None:
    """Stop the Firefox we started, and its children, by its pid (its process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(firefox.pid, sig)
        except ProcessLookupError:
            break
        try:
            firefox.wait(timeout=STOP_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            continue


def scenario(report: dict[str, Any], name: str) -> dict[str, Any]:
    seen: dict[str, Any] = report[name]
    assert "error" not in seen, f"{name} failed in Firefox: {seen['error']}"
    return seen


def test_it_runs_in_firefox_esr(report: dict[str, Any]) -> None:
    assert "Firefox/" in report["userAgent"]


def test_firefox_twelve_tabs_receive_every_event_over_one_connection(
    report: dict[str, Any],
) -> None:
    seen = scenario(report, "framesShared")
    assert len(seen["tabs"]) == 12
    check_tabs(seen["tabs"], [f"s{n}" for n in range(10)], "worker")
    assert (seen["connected"], seen["requests"]) == (1, 1)


def test_firefox_the_leader_tab_goes_and_no_tab_loses_or_repeats_an_event(
    report: dict[str, Any],
) -> None:
    seen = scenario(report, "framesHandover")
    expected = ["a0", "a1", "a2", *(f"b{n}" for n in range(20)), "c"]
    check_tabs(seen["tabs"], expected, "lock")
    assert (seen["leaders"], seen["connected"]) == (1, 1)


def test_firefox_recovers_from_502_and_loses_nothing(report: dict[str, Any]) -> None:
    check_bad_gateway(scenario(report, "badGateway"))


def test_firefox_refused_for_capacity_comes_back_as_told(report: dict[str, Any]) -> None:
    check_capacity(scenario(report, "capacity"))


def test_firefox_revoked_stops(report: dict[str, Any]) -> None:
    check_revoked(scenario(report, "revoked"))


def test_firefox_a_204_stops_for_good(report: dict[str, Any]) -> None:
    check_no_content(scenario(report, "noContent"))


def test_firefox_history_lost_runs_the_callback(report: dict[str, Any]) -> None:
    check_history_lost(scenario(report, "historyLost"))


def test_firefox_two_channels_over_one_stream(report: dict[str, Any]) -> None:
    check_multiplexed(scenario(report, "multiplexed"))


def test_firefox_falls_back_to_web_locks_when_the_worker_cannot_start(
    report: dict[str, Any],
) -> None:
    check_worker_fallback(scenario(report, "workerFallback"))
