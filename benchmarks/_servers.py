"""The servers under test: how each is started, asked for its subscriber count, stopped.

Each server runs as its own process (group) on a free 127.0.0.1 port, is waited for with
a bounded wait, and is stopped by its own pid: SIGINT, then SIGKILL after a bound, then
SIGKILL for any of its children still alive.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _proc

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
BUILD = BENCH / "loadgen" / "build"
PYTHON = sys.executable
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
MAX_FILES = 20000

# gunicorn's gevent worker holds at most 1,000 connections unless told otherwise.
GUNICORN_GEVENT = [
    "-m", "gunicorn", "-k", "gevent", "--worker-connections", str(MAX_FILES),
    "--backlog", "4096", "--keep-alive", "30", "--timeout", "300",
    "--graceful-timeout", "3", "--log-level", "warning",
]  # fmt: skip


@dataclass(frozen=True)
class Spec:
    """One server under test."""

    name: str
    title: str
    # wsgisse | wsgisse-flask | flask-sse | sse-starlette | gevent-minimal | nchan | blaster
    kind: str
    workers: int = 1
    redis: bool = False
    #: flask-sse sends no response header before the first event.
    ready_on_sent: bool = False
    #: whether the server has a generator view for the one-stream scenario.
    has_stream: bool = True
    #: Events for one user: each connection's stream path and each publish's path, with
    #: ``%d`` for the connection's index (see loadgen's ``--path-pattern``). ``None``: one
    #: broadcast channel at ``/events`` and ``/publish``.
    sub_pattern: str | None = None
    pub_pattern: str | None = None
    #: Environment variables of the server process (which variant of the app).
    env: tuple[tuple[str, str], ...] = ()


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in [
        Spec("wsgisse", "wsgisse (memory) gunicorn gevent", "wsgisse"),
        Spec("wsgisse-redis", "wsgisse (Redis) gunicorn gevent", "wsgisse", redis=True),
        Spec("wsgisse-flask", "wsgisse Flask extension gunicorn gevent", "wsgisse-flask"),
        Spec("sse-starlette", "sse-starlette uvicorn uvloop", "sse-starlette"),
        Spec(
            "flask-sse",
            "flask-sse gunicorn gevent + Redis",
            "flask-sse",
            redis=True,
            ready_on_sent=True,
            has_stream=False,
        ),
        Spec("gevent-minimal", "minimal gevent.pywsgi fan-out", "gevent-minimal"),
        Spec("nchan", "Nchan (nginx, C)", "nchan", has_stream=False),
        Spec("blaster", "trivial C server (loadgen ceiling)", "blaster"),
        Spec(
            "wsgisse-audience",
            "wsgisse one channel, each event with audience=[user]",
            "wsgisse-users",
            has_stream=False,
            sub_pattern="/events?user=u%d",
            pub_pattern="/publish?user=u%d",
            env=(("BENCH_USERS", "audience"),),
        ),
        Spec(
            "wsgisse-channels",
            "wsgisse a channel per user",
            "wsgisse-users",
            has_stream=False,
            sub_pattern="/events?channel=u%d",
            pub_pattern="/publish?channel=u%d",
            env=(("BENCH_USERS", "channels"),),
        ),
        Spec(
            "nchan-channels",
            "Nchan a channel per subscriber",
            "nchan",
            has_stream=False,
            sub_pattern="/sub/u%d",
            pub_pattern="/pub/u%d",
        ),
    ]
}


def free_port() -> int:
    """A port the kernel has just handed out and taken back: free for a moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(port: int, path: str, timeout: float = 5.0, headers: dict[str, str] | None = None):
    """GET on 127.0.0.1: (status, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def http_post(port: int, path: str, body: bytes, timeout: float = 5.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "text/plain"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    """Stop ``proc`` and its children, by their own pids, within a bound."""
    children = [pid for pid in _proc.descendants(proc.pid) if pid != proc.pid]
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    for pid in children:
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Redis:
    """A redis-server of our own on a free port, no persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        command = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--maxclients", "19900", "--dir", str(workdir),
            "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM)


NGINX_CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {max_files};
pid {dir}/nginx.pid;
error_log stderr error;
events {{ worker_connections {max_files}; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    nchan_max_reserved_memory 256M;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /events {{
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            nchan_eventsource_ping_interval 15;
            # Like the other servers: a new subscriber gets live events, not the buffer.
            nchan_subscriber_first_message newest;
        }}
        location = /publish {{
            nchan_publisher;
            nchan_channel_id bench;
            nchan_message_buffer_length 1000;
            nchan_message_timeout 5m;
        }}
        # A channel per subscriber (the events-for-one-user scenarios): /sub/u1, /pub/u1.
        location ~ ^/sub/(\\w+)$ {{
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_eventsource_ping_interval 15;
            nchan_subscriber_first_message newest;
        }}
        location ~ ^/pub/(\\w+)$ {{
            nchan_publisher;
            nchan_channel_id $1;
            nchan_message_buffer_length 1000;
            nchan_message_timeout 5m;
        }}
        # Subscribers and channels over every channel.
        location = /nchan_status {{
            nchan_stub_status;
        }}
    }}
}}
"""


@dataclass
class Server:
    """A running server under test."""

    spec: Spec
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    redis: Redis | None = None
    log: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def pids(self) -> list[int]:
        """Every process whose CPU and memory count: the tree, and Redis when used."""
        pids = _proc.descendants(self.proc.pid)
        if self.redis is not None:
            pids.append(self.redis.proc.pid)
        return pids

    def worker_pids(self) -> list[int]:
        """The processes that serve clients (gunicorn's and nginx's workers)."""
        tree = _proc.descendants(self.proc.pid)
        return tree[1:] if len(tree) > 1 else tree

    def subscribers(self, timeout: float = 5.0) -> int:
        """How many subscribers the server counts (all workers), or -1 when it won't say."""
        if self.spec.kind == "nchan" and self.spec.sub_pattern is not None:
            return self.nchan_status(timeout)["subscribers"]
        if self.spec.kind == "nchan":
            status, body = http_get(
                self.port, "/publish", timeout, headers={"Accept": "application/json"}
            )
            if status == 404:  # no channel yet: nobody subscribed
                return 0
            return int(json.loads(body)["subscribers"])
        if self.spec.workers == 1 or self.spec.kind == "flask-sse":
            _, body = http_get(self.port, "/stats", timeout)
            return int(json.loads(body)["subscribers"])
        # Several workers, each counting its own: ask until every worker has answered.
        seen: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < self.spec.workers and time.monotonic() < deadline:
            _, body = http_get(self.port, "/stats", timeout)
            stats = json.loads(body)
            seen[int(stats["pid"])] = int(stats["subscribers"])
        return sum(seen.values())

    def nchan_status(self, timeout: float = 5.0) -> dict[str, int]:
        """Nchan's counters over every channel (``subscribers``, ``channels``...)."""
        _, body = http_get(self.port, "/nchan_status", timeout)
        found: dict[str, int] = {}
        for line in body.decode().splitlines():
            name, _, value = line.partition(":")
            with contextlib.suppress(ValueError):
                found[name.strip()] = int(value.strip())
        return found

    def stats(self) -> dict[str, int]:
        _, body = http_get(self.port, "/stats?full=1")
        result: dict[str, int] = json.loads(body)
        return result

    def publish(self, body: bytes) -> int:
        return http_post(self.port, "/publish", body)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT)
        if self.redis is not None:
            self.redis.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _command(spec: Spec, port: int, workdir: Path, env: dict[str, str]) -> list[str]:
    bind = f"127.0.0.1:{port}"
    gunicorn_apps = {
        "wsgisse": "benchmarks.peers.wsgisse_app:application",
        "wsgisse-flask": "benchmarks.peers.wsgisse_flask_app:app",
        "flask-sse": "benchmarks.peers.flasksse_app:app",
        "wsgisse-users": "benchmarks.peers.wsgisse_users_app:application",
    }
    if spec.kind in gunicorn_apps:
        app = gunicorn_apps[spec.kind]
        return [PYTHON, *GUNICORN_GEVENT, "-w", str(spec.workers), "-b", bind, app]
    if spec.kind == "sse-starlette":
        return [
            PYTHON, "-m", "uvicorn", "benchmarks.peers.starlette_app:app",
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
            "--http", "httptools", "--log-level", "warning", "--no-access-log",
            "--backlog", "4096", "--timeout-keep-alive", "30",
            "--timeout-graceful-shutdown", "2",
        ]  # fmt: skip
    if spec.kind == "gevent-minimal":
        return [PYTHON, "-m", "benchmarks.peers.gevent_minimal", str(port)]
    if spec.kind == "nchan":
        conf = workdir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                module=NCHAN_MODULE,
                workers=spec.workers,
                max_files=MAX_FILES,
                dir=workdir,
                port=port,
            )
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-p", str(workdir), "-c", str(conf), "-e", "stderr"]
    if spec.kind == "blaster":
        return [str(BUILD / "blaster"), str(port)]
    raise ValueError(f"unknown server kind {spec.kind!r}")


def available(spec: Spec) -> str | None:
    """Why ``spec`` cannot run here, or ``None``."""
    if spec.kind == "nchan" and not NCHAN_MODULE.exists():
        return "libnginx-mod-nchan not installed"
    if spec.redis and shutil.which("redis-server") is None:
        return "redis-server not installed"
    if spec.kind == "wsgisse" and spec.redis:
        probe = subprocess.run(
            [PYTHON, "-c", "import wsgisse.backends.redis as r; r.RedisBackend"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            return f"wsgisse.backends.redis not importable ({last})"
    return None


@contextlib.contextmanager
def running(spec: Spec, heartbeat: float | None = None) -> Iterator[Server]:
    """Start ``spec`` on a free port, wait (bounded) until it answers, stop it after."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{spec.name}-"))
    redis = Redis(workdir) if spec.redis else None
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **dict(spec.env)}
    if redis is not None:
        env["REDIS_URL"] = redis.url
        if spec.kind == "wsgisse":
            env["BENCH_REDIS_URL"] = redis.url
    if heartbeat is not None:
        env["BENCH_HEARTBEAT"] = str(heartbeat)
    port = free_port()
    log = workdir / "server.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            _command(spec, port, workdir, env),
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(spec, port, proc, workdir, redis, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{spec.name} exited: {log.read_text()[-2000:]}")
            try:
                server.subscribers(timeout=2)
                if spec.workers == 1 or len(server.worker_pids()) >= spec.workers:
                    break
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name} did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
