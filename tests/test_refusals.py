"""Setups that cannot stream are refused at once, with the fix named; the rest are warned.

* A server that serves one request at a time (wsgiref's ``simple_server``, Bottle's
  default ``bottle.run()``, Werkzeug without threads): the stream request gets a 500
  naming the fix, the server keeps answering, and the log says it once. wsgiref with a
  ``ThreadingMixIn`` (whose environ also says ``multithread`` False) still streams.
* The memory backend under several gunicorn workers: a warning at start-up and one at
  the first stream of a memory channel in a worker, naming ``RedisBackend``.
* ``import wsgisse.integrations.flask`` (or bottle) without the framework names the extra.
* gunicorn ``-k eventlet``: gunicorn 26 and later have no such worker and stop at start
  (measured here, with the gunicorn installed); for older ones the hook's decision,
  taken from gunicorn's real configuration object, refuses it naming ``-k gevent``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from _servers import (
    HOST,
    LIVE_DIR,
    ServerProcess,
    free_port,
    gunicorn_gevent,
    open_stream,
    python_env,
)
from conftest import StartServer

from wsgisse.integrations.gunicorn import refusal

HOOKS = "python:wsgisse.integrations.gunicorn"
FIX = "gunicorn -k gevent"
WAIT = 10.0


def _one_request_server(kind: str) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, str(LIVE_DIR / "run_one_request.py"), "--port", str(port), kind]
    return ServerProcess(argv, port=port, name=kind, env=python_env())


def _wait_for_output(server: ServerProcess, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + WAIT
    while server.output().count(text) < count:
        assert time.monotonic() < deadline, server.output_tail()
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["wsgiref", "bottle", "werkzeug"])
def test_a_one_request_server_answers_the_stream_with_the_fix_and_keeps_serving(
    kind: str, start_server: StartServer
) -> None:
    server = start_server(_one_request_server(kind))
    for _ in range(2):
        response = requests.get(
            server.url + "/events", headers={"Accept": "text/event-stream"}, timeout=WAIT
        )
        assert response.status_code == 500
        assert "one request at a time" in response.text
        assert FIX in response.text
    # Not frozen: the next request is answered.
    assert requests.get(server.url + "/", timeout=WAIT).text == "ok\n"
    # One log line, however many streams were refused.
    _wait_for_output(server, "serves one request at a time")
    time.sleep(0.2)  # let a second line, if any, reach the log
    assert server.output().count("wsgisse: this server serves one request at a time") == 1


def test_wsgiref_with_a_thread_per_request_still_streams(start_server: StartServer) -> None:
    server = start_server(_one_request_server("wsgiref-threading"))
    with open_stream(server.url + "/events", timeout=WAIT) as stream:
        assert stream.status == 200
        requests.post(server.url + "/publish", timeout=WAIT).raise_for_status()
        assert stream.next_event(timeout=WAIT).data == "x"
        # And the server answers beside the open stream.
        assert requests.get(server.url + "/", timeout=WAIT).text == "ok\n"
    assert "one request at a time" not in server.output()


# -- the memory backend under several gunicorn workers ---------------------------------------

_AT_START = "wsgisse.backends.redis is not imported"
_AT_STREAM = "keeps its events in this process' memory, but 2 workers serve the app"


def test_several_workers_with_the_memory_backend_are_warned_naming_redis(
    start_server: StartServer,
) -> None:
    server = start_server(
        gunicorn_gevent("tests.live.deploy_app:app", workers=2, extra_args=["-c", HOOKS])
    )
    _wait_for_output(server, _AT_START, count=2)  # once per worker
    assert "RedisBackend" in server.output()
    assert _AT_STREAM not in server.output()  # no stream yet
    with open_stream(server.url + "/events", timeout=WAIT) as stream:
        assert stream.status == 200
        _wait_for_output(server, _AT_STREAM)
    # Once per worker, not per stream.
    with open_stream(server.url + "/events", timeout=WAIT):
        pass
    assert server.output().count(_AT_STREAM) <= 2


def test_one_worker_with_the_memory_backend_is_not_warned(start_server: StartServer) -> None:
    server = start_server(
        gunicorn_gevent("tests.live.deploy_app:app", workers=1, extra_args=["-c", HOOKS])
    )
    with open_stream(server.url + "/events", timeout=WAIT) as stream:
        assert stream.status == 200
        requests.post(server.url + "/publish?data=y", timeout=WAIT).raise_for_status()
        assert stream.next_event(timeout=WAIT).data == "y"
    output = server.output()
    assert _AT_START not in output
    assert "keeps its events in this process' memory" not in output


# -- the integrations without their framework ------------------------------------------------


@pytest.mark.parametrize(
    ("module", "package", "extra"), [("flask", "flask", "flask"), ("bottle", "bottle", "bottle")]
)
def test_an_integration_without_its_framework_names_the_extra(
    module: str, package: str, extra: str
) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{package!r}] = None\n"
        "try:\n"
        f"    import wsgisse.integrations.{module}\n"
        "except ImportError as exc:\n"
        "    print(exc.name, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=python_env(),
    )
    assert result.stdout.strip() == (
        f"{package} wsgisse.integrations.{module} needs {package.capitalize()}: "
        f"pip install wsgisse[{extra}]"
    )


# -- gunicorn -k eventlet ---------------------------------------------------------------------


def test_gunicorn_k_eventlet_stops_at_start_up_never_hangs() -> None:
    port = free_port()
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "eventlet",
            "-b",
            f"{HOST}:{port}",
            "--no-control-socket",
            "-c",
            HOOKS,
            "tests.live.deploy_app:app",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(),
        check=False,
    )
    assert result.returncode != 0, result.stderr
    assert "eventlet" in result.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("worker_class", "refused_with"),
    [
        ("eventlet", "-k gevent"),
        ("gunicorn.workers.geventlet.EventletWorker", "-k gevent"),
        ("sync", "-k gevent"),
        ("gevent", None),
        ("gthread", None),
    ],
)
def test_the_hook_decides_from_gunicorns_own_configuration(
    worker_class: str, refused_with: str | None
) -> None:
    from gunicorn.config import Config  # noqa: PLC0415

    cfg = Config()
    cfg.set("worker_class", worker_class)
    class_name = worker_class.rpartition(".")[2]
    reason = refusal(cfg.worker_class_str, class_name)
    if refused_with is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused_with in reason
