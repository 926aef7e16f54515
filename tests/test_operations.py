"""Operating under gunicorn: shutdown, reload, worker kinds, in real processes."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from _servers import (
    LIVE_DIR,
    RedisServer,
    ServerProcess,
    free_port,
    gunicorn_gevent,
    open_stream,
    python_env,
)

from wsgisse.testing import wait_until

STREAMS = 200
# gunicorn would wait this long for open streams without wsgisse's shutdown.
GRACEFUL_TIMEOUT = 30
# What the tests allow for the streams to end and the process to exit.
EXIT_BOUND = 8.0


def gunicorn(worker_class: str, *extra: str, workers: int = 1) -> ServerProcess:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        worker_class,
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT),
        "--no-control-socket",
        *extra,
        "core_app:app",
    ]
    env = python_env([LIVE_DIR])
    return ServerProcess(argv, port=port, name=f"gunicorn-{worker_class}", env=env)


def get(server: ServerProcess, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        return json.load(response)


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"no line from the client within {timeout} s")
    return process.stdout.readline().strip()


@pytest.fixture
def clients_of() -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(server: ServerProcess, mode: str) -> subprocess.Popen[str]:
        script = str(LIVE_DIR / "reload_clients.py")
        process = subprocess.Popen(
            [sys.executable, script, server.url, str(STREAMS), mode],
            stdout=subprocess.PIPE,
            text=True,
            env=python_env([LIVE_DIR]),
        )
        started.append(process)
        assert read_line(process, 60) == "READY"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def report_of(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = process.communicate(timeout=90)
    reports: list[dict[str, Any]] = json.loads(out.strip().splitlines()[-1])["reports"]
    assert len(reports) == STREAMS
    return reports


@pytest.mark.slow
def test_sigterm_ends_200_streams_with_a_farewell_and_exits_well_before_the_timeout(
    clients_of: Any,
) -> None:
    server = gunicorn("gevent", "--worker-connections", "1000").start()
    try:
        clients = clients_of(server, "once")
        started = time.monotonic()
        server.stop(signal.SIGTERM, timeout=GRACEFUL_TIMEOUT)
        took = time.monotonic() - started
        reports = report_of(clients)
    finally:
        server.close()
    assert took < EXIT_BOUND, f"gunicorn took {took:.1f} s to exit"
    assert all(entry["first_events"] == ["before"] for entry in reports)
    assert all(json.loads(entry["farewell"]) == {"reason": "shutdown"} for entry in reports)
    retries = {entry["retry"] for entry in reports}
    assert len(retries) > 10, "the farewell's retry must be jittered"


@pytest.mark.slow
def test_sighup_moves_200_streams_to_new_workers_told_that_history_was_lost(
    clients_of: Any,
) -> None:
    with gunicorn("gevent", "--worker-connections", "1000") as server:
        old_worker = get(server, "/stats")["pid"]
        clients = clients_of(server, "reconnect")
        started = time.monotonic()
        os.kill(server.pid, signal.SIGHUP)
        wait_until(
            lambda: (
                not psutil.pid_exists(old_worker)
                or psutil.Process(old_worker).status() == psutil.STATUS_ZOMBIE
            ),
            timeout=GRACEFUL_TIMEOUT,
            message="the old worker's exit",
        )
        took = time.monotonic() - started
        reports = report_of(clients)
        assert server.alive
    assert took < EXIT_BOUND, f"the old worker took {took:.1f} s to exit"
    for entry in reports:
        assert json.loads(entry["farewell"]) == {"reason": "shutdown"}
        assert entry["status"] == 200
        assert entry["new_pid"] != entry["old_pid"] == str(old_worker)
        # A memory channel dies with its worker: the new one says what was lost.
        assert entry["resumed_with"] == ["wsgisse-history-lost"]


def test_the_gthread_worker_caps_streams_below_its_threads() -> None:
    hooks = "python:wsgisse.integrations.gunicorn"
    with gunicorn("gthread", "--threads", "4", "-c", hooks) as server:
        streams = [open_stream(server.url + "/events") for _ in range(3)]
        try:
            wait_until(lambda: get(server, "/stats")["subscribers"] == 3, timeout=10)
            with open_stream(server.url + "/events") as refused:
                farewell = refused.read_to_end()
                assert farewell[-1].type == "wsgisse-end"
                assert json.loads(farewell[-1].data) == {"reason": "capacity"}
            assert get(server, "/stats")["subscribers"] == 3
        finally:
            for stream in streams:
                stream.close()


def test_the_sync_worker_is_refused_at_start_up_with_the_fix() -> None:
    port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "sync",
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "-c",
            "python:wsgisse.integrations.gunicorn",
            "core_app:app",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env([LIVE_DIR]),
        check=False,
    )
    assert result.returncode != 0
    assert "-k gevent" in result.stderr


@pytest.mark.slow
@pytest.mark.redis
def test_sighup_with_the_redis_backend_loses_no_event_for_200_streams(
    redis_server: RedisServer,
) -> None:
    """Publishing goes on through the reload; every client gets every event once."""
    last = 299
    server = gunicorn_gevent(
        "tests.live.redis_app:app",
        workers=2,
        extra_args=["--graceful-timeout", str(GRACEFUL_TIMEOUT)],
        env={"WSGISSE_TEST_REDIS_URL": redis_server.url},
    ).start()
    followers = publisher = None
    try:
        followers = subprocess.Popen(
            [
                sys.executable,
                str(LIVE_DIR / "reload_follow.py"),
                server.url,
                str(STREAMS),
                str(last),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        assert read_line(followers, 60) == "READY"
        # Every worker is up once 200 clients are in (the second may boot after start()).
        old_workers = {p.pid for p in server.group_members() if p.pid != server.pid}
        publisher = subprocess.Popen(
            [
                sys.executable,
                str(LIVE_DIR / "redis_app.py"),
                redis_server.url,
                str(last + 1),
                "--interval",
                "0.02",
            ],
            stdout=subprocess.DEVNULL,
            env=python_env(),
        )
        time.sleep(1.0)  # let publishing run before the reload (not a synchronisation)
        started = time.monotonic()
        os.kill(server.pid, signal.SIGHUP)
        wait_until(
            lambda: all(
                not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
                for pid in old_workers
            ),
            timeout=GRACEFUL_TIMEOUT,
            message="the old workers' exit",
        )
        took = time.monotonic() - started
        assert publisher.wait(60) == 0
        out, _ = followers.communicate(timeout=120)
    finally:
        for process in (followers, publisher):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        server.close()
    assert took < EXIT_BOUND, f"the old workers took {took:.1f} s to exit"
    clients = json.loads(out.strip().splitlines()[-1])["clients"]
    assert len(clients) == STREAMS
    old = {str(pid) for pid in old_workers}
    for client in clients:
        assert client["ns"] == list(range(client["ns"][0], last + 1))  # in order, no duplicate
        # Served by an old worker, then by a new one. A client that comes back within
        # the second an old worker still accepts in (gunicorn closes its listener only
        # at its next tick) is sent on at once: each move is announced by a farewell.
        pids = client["pids"]
        assert pids[0] in old
        assert pids[-1] not in old
        assert all(pid in old for pid in pids[:-1])
        assert client["farewells"] == len(pids) - 1
    # Subscribed before the first publish, each client got them all.
    assert all(client["ns"][0] == 0 for client in clients)
