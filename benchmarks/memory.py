"""Where an idle stream's memory goes: RSS per stream, and tracemalloc's account of it.

    python -m benchmarks.memory                  # 5,000 idle streams, one gevent worker
    python -m benchmarks.memory --conns 2000 --group lineno

Two runs of the bench app (``peers/wsgisse_app.py``) under ``gunicorn -k gevent``: one
without tracing (RSS per stream, as the idle scenarios measure it), one with
``tracemalloc`` on in the worker from its start, whose snapshot taken before the streams
open is compared with one taken while they are held: the bytes each source file (or
line) allocated per stream and still holds. What tracemalloc cannot see is the rest of
the RSS: the allocator's overhead and page rounding, and memory taken outside Python's
allocator. This module is also the app served (``benchmarks.memory:app``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import signal
import subprocess
import time
import tracemalloc
import urllib.request
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_TRACE = "BENCH_TRACEMALLOC"
_snapshots: dict[str, tracemalloc.Snapshot] = {}

if os.environ.get(_TRACE):
    tracemalloc.start(1)

from benchmarks.peers.wsgisse_app import application  # noqa: E402 - once tracing is on


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The bench app, plus ``/memory?base`` and ``/memory?group=filename|lineno``."""
    if environ.get("PATH_INFO") != "/memory":
        return application(environ, start_response)
    query = environ.get("QUERY_STRING", "")
    gc.collect()
    if query == "base":
        _snapshots["base"] = tracemalloc.take_snapshot()
        body = b"[]"
    else:
        group = query.split("=", 1)[1] if "=" in query else "filename"
        stats = tracemalloc.take_snapshot().compare_to(_snapshots["base"], group)
        body = json.dumps([(str(s.traceback[0]), s.size_diff) for s in stats]).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def _get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
        body: bytes = response.read()
        return body


def _run(conns: int, group: str | None) -> tuple[int, list[tuple[str, int]]]:
    """(RSS bytes per held stream, tracemalloc rows when ``group``) for ``conns`` streams."""
    from benchmarks import _loadgen, _proc, _servers  # noqa: PLC0415 - the driver only

    port = _servers.free_port()
    env = {**os.environ, "PYTHONPATH": str(_servers.ROOT)}
    if group is not None:
        env[_TRACE] = "1"
    command = [_servers.PYTHON, *_servers.GUNICORN_GEVENT, "-w", "1", "-b",
               f"127.0.0.1:{port}", "benchmarks.memory:app"]  # fmt: skip
    server = subprocess.Popen(command, cwd=_servers.ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(port, "/stats")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        worker = _proc.descendants(server.pid)[-1]
        loadgen = [str(_loadgen.LOADGEN), "--port", str(port), "--mode", "idle",
                   "--connect-timeout", "90", "--hold", "300"]  # fmt: skip
        subprocess.run([*loadgen, "--conns", "20", "--src", "60.1", "--hold", "1"],
                       capture_output=True, check=False, timeout=60)  # fmt: skip
        time.sleep(1)  # The warm-up's streams are gone once their hang-ups are seen.
        if group is not None:
            _get(port, "/memory?base")
        before = _proc.rss_kib([worker])
        with subprocess.Popen([*loadgen, "--conns", str(conns), "--src", "61.1"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) as held:  # fmt: skip
            assert held.stdout is not None  # noqa: S101 - Popen made them pipes
            assert held.stdin is not None  # noqa: S101
            for line in held.stdout:
                if not line.startswith("PHASE connected"):
                    continue
                count = 0
                for _ in range(300):
                    count = int(json.loads(_get(port, "/stats"))["subscribers"])
                    if count >= conns:
                        break
                    time.sleep(0.2)
                time.sleep(2)
                per_stream = (_proc.rss_kib([worker]) - before) * 1024 // max(count, 1)
                rows = [] if group is None else json.loads(_get(port, f"/memory?group={group}"))
                held.stdin.write("release\n")
                held.stdin.flush()
                return per_stream, [(where, size) for where, size in rows]
        raise RuntimeError("the load generator never connected")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _short(where: str) -> str:
    """``where`` from the package or project it is in (site-packages, the tree, the stdlib)."""
    from benchmarks import _servers  # noqa: PLC0415 - the driver only

    for marker in ("site-packages/", f"{_servers.ROOT}/"):
        where = where.split(marker, 1)[-1]
    return re.sub(r"^.*/lib/python3\.\d+/", "", where)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--conns", type=int, default=5000)
    parser.add_argument("--group", default="filename", choices=["filename", "lineno"])
    args = parser.parse_args(argv)
    rss, _ = _run(args.conns, None)
    print(f"RSS per idle stream: {rss:,} B ({args.conns:,} streams)")
    _, rows = _run(args.conns, args.group)
    print(f"tracemalloc, per stream: {sum(size for _, size in rows) / args.conns:,.0f} B")
    for where, size in rows:
        if size / args.conns >= 8:  # Less than a word per stream is noise.
            print(f"  {size / args.conns:7,.0f} B  {_short(where)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
