"""Real servers for the live tests, and a client that reads an event stream as a browser.

Every server is a subprocess on 127.0.0.1 and a free port, started with a bounded wait and
stopped through its own handle (its pid, and the process group it leads), never by name.
Its output goes to a log file that :meth:`ServerProcess.output` reads, so that a failing
test can show what the server said.

The factories (:func:`gunicorn_gevent`, :func:`gevent_server`, :func:`werkzeug_threaded`,
:func:`redis_server`) return a :class:`ServerProcess` that is not started yet: use it as a
context manager, or through the fixtures in ``conftest.py``, which stop it after the test.

:func:`open_stream` is a small HTTP/1.1 client for ``text/event-stream`` responses. It
reads the socket itself (``http.client`` only parses the headers) so that a read can time
out and the stream still be read afterwards, which ``http.client``'s responses cannot do,
and it parses what it reads with ``wsgisse._parser.EventStreamParser``.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import psutil

if TYPE_CHECKING:
    from wsgisse._parser import EventStreamParser, MessageEvent, ParsedItem

__all__ = [
    "HOST",
    "LIVE_DIR",
    "REPO_ROOT",
    "WSGI_SERVERS",
    "EventStream",
    "ProgramMissingError",
    "RedisServer",
    "ServerProcess",
    "ServerStartError",
    "StreamEndedError",
    "find_program",
    "free_port",
    "gevent_server",
    "gunicorn_gevent",
    "open_stream",
    "port_accepts",
    "python_env",
    "redis_server",
    "running_servers",
    "self_signed_certificate",
    "werkzeug_threaded",
]

HOST: Final = "127.0.0.1"
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
LIVE_DIR: Final = Path(__file__).resolve().parent / "live"

# Bounded waits. Starting: a gunicorn master plus a gevent worker takes about a second
# here; 20 s absorbs a loaded CI machine. Stopping: longer than the graceful timeout given
# to gunicorn below, so a graceful stop is never cut short on a healthy server.
START_TIMEOUT: Final = 20.0
STOP_TIMEOUT: Final = 10.0
GUNICORN_GRACEFUL_TIMEOUT: Final = 3
# How long a stream read waits when the caller names no timeout.
READ_TIMEOUT: Final = 10.0

_OUTPUT_TAIL = 4000


class ServerStartError(RuntimeError):
    """A server exited, or did not accept connections, within its start timeout.

    The message carries the tail of the server's output.
    """


class ProgramMissingError(RuntimeError):
    """A program the live tests need (redis-server, nginx, chromium, caddy) is missing.

    ``make test`` installs them with apt-get; run it once, or install the package named
    in the message.
    """


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on at the time of the call.

    The kernel picks it (bind to port 0); another process could take it before the server
    binds, but the ephemeral range is large and only this test run uses it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def find_program(name: str, *, package: str | None = None) -> str:
    """Return the full path of a system program, or raise :class:`ProgramMissingError`.

    Also looks in the sbin folders, which a non-root ``PATH`` may lack (nginx is in
    /usr/sbin). Never skips: a missing program is a broken machine, and ``make test``
    installs it.
    """
    found = shutil.which(name)
    if found is not None:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ProgramMissingError(
        f"{name!r} is not installed: `make test` installs it, or run "
        f"`apt-get install {package or name}`"
    )


def port_accepts(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Return whether a TCP connection to ``host:port`` succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def python_env(
    pythonpath: Sequence[str | Path] = (), env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a Python server: ours, plus the repository root on the path.

    ``pythonpath`` goes first, then the repository root (so ``tests.live.apps:app`` and
    ``examples.demo:app`` import), then any ``PYTHONPATH`` already set. Output is
    unbuffered so the log file shows a crash's last words.
    """
    merged = dict(os.environ)
    if env is not None:
        merged.update(env)
    parts = [str(p) for p in pythonpath]
    parts.append(str(REPO_ROOT))
    if merged.get("PYTHONPATH"):
        parts.append(merged["PYTHONPATH"])
    merged["PYTHONPATH"] = os.pathsep.join(parts)
    merged["PYTHONUNBUFFERED"] = "1"
    return merged


# Servers started and not stopped yet: conftest.py stops and reports any left at the end
# of the session, so that a leak fails the run instead of outliving it.
_running: set[ServerProcess] = set()


def running_servers() -> list[ServerProcess]:
    """The servers started in this process and not stopped yet."""
    return sorted(_running, key=lambda server: server.name)


class ServerProcess:
    """A server in a subprocess: started with a bounded wait, stopped by its own handle.

    The process is started in a new session, so it leads a process group of its own
    (pgid == pid) holding whatever it forks (gunicorn's workers, nginx's). :meth:`stop`
    signals the leader, waits, then SIGKILLs that group, and only that group.

    Args:
        argv: the command; ``argv[0]`` is a path or a name on ``PATH``.
        port: the port the server listens on.
        name: for messages and reports.
        env: its environment (default: ours).
        cwd: its working folder (default: the repository root).
        ready: called with the server while it starts; it is ready when this returns
            true. Default: ``port`` accepts a TCP connection.
        scheme: the scheme of :attr:`url`.
        start_timeout: seconds to wait for ``ready``.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path = REPO_ROOT,
        ready: Callable[[ServerProcess], bool] | None = None,
        scheme: str = "http",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.host = HOST
        self.name = name or Path(argv[0]).name
        self.env = dict(env) if env is not None else None
        self.cwd = Path(cwd)
        self.scheme = scheme
        self.start_timeout = start_timeout
        self._ready = ready
        self._proc: subprocess.Popen[bytes] | None = None
        self._returncode: int | None = None
        self._reaped_elsewhere = False
        # Made at the first start and deleted by close(); the output stays readable.
        self.log_path: Path | None = None
        self._closed = False
        self._final_output = b""

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else f"returncode={self._returncode}"
        return f"<ServerProcess {self.name} {self.url} {state}>"

    # -- what a test reads ------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (with this server's scheme), no trailing slash."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The pid of the running server; also its process group id."""
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the server was started and has not been stopped (it may have died)."""
        return self._proc is not None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last run (negative: killed by that signal)."""
        return self._returncode

    def alive(self) -> bool:
        """Whether the server process is running now (without reaping it)."""
        return self._proc is not None and not self._leader_exited()

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr, over all its runs."""
        if self.log_path is not None:
            with contextlib.suppress(FileNotFoundError):
                return self.log_path.read_bytes().decode("utf-8", "replace")
        return self._final_output.decode("utf-8", "replace")

    def output_tail(self, limit: int = _OUTPUT_TAIL) -> str:
        """The last ``limit`` characters of :meth:`output`."""
        text = self.output()
        return text if len(text) <= limit else "[...]\n" + text[-limit:]

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ServerProcess:
        """Start the server and wait until it is ready; return ``self``.

        Raises:
            ServerStartError: the server exited, or was not ready within
                ``start_timeout`` (it is then stopped); the message has its output.
        """
        if self._proc is not None:
            raise RuntimeError(f"{self.name} is already running (pid {self._proc.pid})")
        if self._closed:
            raise RuntimeError(f"{self.name} was closed: make a new ServerProcess")
        if self.log_path is None:
            log_fd, log_name = tempfile.mkstemp(prefix=f"wsgisse-{self.name}-", suffix=".log")
            os.close(log_fd)
            self.log_path = Path(log_name)
        self._returncode = None
        self._reaped_elsewhere = False
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        _running.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop(signal.SIGKILL)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        delay = 0.01
        while True:
            if self._leader_exited():
                self.stop()
                raise ServerStartError(
                    f"{self.name} exited with status {self._returncode} before it was "
                    f"ready on port {self.port}; its output:\n{self.output_tail()}"
                )
            if self._is_ready():
                return
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self.name} was not ready on port {self.port} after "
                    f"{self.start_timeout} s; its output:\n{self.output_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _is_ready(self) -> bool:
        if self._ready is not None:
            return self._ready(self)
        return port_accepts(self.port, self.host)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Stop the server; return its exit status (``None`` if it was not running).

        Sends ``sig`` to the server's own pid and waits up to ``timeout`` seconds for it
        to exit; if it has not, SIGKILLs its process group. Either way, whatever is left
        in its process group afterwards (workers it did not reap) is SIGKILLed too. The
        leader is reaped only after that, so its pid, and with it the group id, cannot
        be reused by an unrelated process while we signal it.

        Raises:
            RuntimeError: processes of the group survived SIGKILL for ``timeout`` seconds.
        """
        proc = self._proc
        if proc is None:
            return self._returncode
        try:
            if not self._leader_exited():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
                if not self._wait_leader(timeout):
                    self._kill_group()
                    if not self._wait_leader(timeout):
                        raise RuntimeError(f"{self.name} (pid {proc.pid}) survived SIGKILL")
            self._kill_group()
            self._wait_group_gone(timeout)
        finally:
            if self._leader_exited():
                self._returncode = proc.wait()
                self._proc = None
                _running.discard(self)
        return self._returncode

    def restart(self, timeout: float = STOP_TIMEOUT) -> ServerProcess:
        """Stop the server (SIGTERM) and start it again on the same port."""
        self.stop(timeout=timeout)
        return self.start()

    def close(self) -> None:
        """Stop the server, keep its output in memory, and delete its log file."""
        try:
            self.stop()
        finally:
            self._closed = True
            if self.log_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._final_output = self.log_path.read_bytes()
                    self.log_path.unlink()
                self.log_path = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- process plumbing ----------------------------------------------------------------

    def _leader_exited(self) -> bool:
        """Whether the leader has exited, leaving it unreaped (a zombie) if it has."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return True
        try:
            # WNOWAIT: look without reaping, so the pid stays ours until we reap it.
            result = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            # Something else reaped it (an os.wait() in the test): its pid, and so the
            # group id, may already name another process, which must not be signalled.
            self._reaped_elsewhere = True
            return True
        return result is not None

    def _wait_leader(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._leader_exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _kill_group(self) -> None:
        if self._proc is None or self._reaped_elsewhere:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def group_members(self) -> list[psutil.Process]:
        """The live (non-zombie) processes in this server's process group, leader included.

        PID 1 on some machines (containers, micro-VMs) never reaps orphans, so a killed
        worker can stay a zombie forever: zombies are dead and are not counted.
        """
        if self._proc is None:
            return []
        return _group_members(self._proc.pid)

    def _wait_group_gone(self, timeout: float) -> None:
        if self._proc is None or self._reaped_elsewhere:
            return
        pgid = self._proc.pid
        deadline = time.monotonic() + timeout
        while True:
            left = [p for p in _group_members(pgid) if p.pid != pgid]
            if not left:
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.name}: processes {[p.pid for p in left]} of group {pgid} "
                    f"survived SIGKILL for {timeout} s"
                )
            time.sleep(0.02)


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


# -- WSGI servers ---------------------------------------------------------------------------


def gunicorn_gevent(
    app_ref: str,
    *,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    pythonpath: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """gunicorn with gevent workers serving the WSGI app ``app_ref`` ("module:attr").

    ``--graceful-timeout`` is short: an open event stream never ends by itself, and
    gunicorn would otherwise wait 30 s for it on SIGTERM before killing the worker.
    """
    port = free_port() if port is None else port
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "gevent",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--worker-connections",
        "2000",
        "--graceful-timeout",
        str(GUNICORN_GRACEFUL_TIMEOUT),
        # gunicorn 25.1+ opens a control socket at one fixed path by default, which two
        # servers in one test would fight over; the tests never use it.
        "--no-control-socket",
        *extra_args,
        app_ref,
    ]
    return ServerProcess(argv, port=port, name="gunicorn-gevent", env=python_env(pythonpath, env))


def gevent_server(
    app_ref: str,
    *,
    port: int | None = None,
    pythonpath: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
    tls: tuple[str | Path, str | Path] | None = None,
) -> ServerProcess:
    """gevent's ``pywsgi.WSGIServer`` (monkey-patched first) serving ``app_ref``.

    ``tls=(certfile, keyfile)`` serves HTTPS (see :func:`self_signed_certificate`).
    """
    port = free_port() if port is None else port
    argv = [sys.executable, str(LIVE_DIR / "run_gevent.py"), "--port", str(port)]
    if tls is not None:
        argv += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    argv.append(app_ref)
    return ServerProcess(
        argv,
        port=port,
        name="gevent-pywsgi",
        env=python_env(pythonpath, env),
        scheme="http" if tls is None else "https",
    )


def werkzeug_threaded(
    app_ref: str,
    *,
    port: int | None = None,
    pythonpath: Sequence[str | Path] = (),
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Werkzeug's development server, one thread per request, serving ``app_ref``."""
    port = free_port() if port is None else port
    argv = [sys.executable, str(LIVE_DIR / "run_werkzeug.py"), "--port", str(port), app_ref]
    return ServerProcess(argv, port=port, name="werkzeug-threaded", env=python_env(pythonpath, env))


WSGI_SERVERS: Final[Mapping[str, Callable[..., ServerProcess]]] = {
    "gunicorn-gevent": gunicorn_gevent,
    "gevent-pywsgi": gevent_server,
    "werkzeug-threaded": werkzeug_threaded,
}
"""The WSGI server factories by name; each takes ``app_ref`` and ``port=``."""


# -- redis ----------------------------------------------------------------------------------


class RedisServer(ServerProcess):
    """A redis-server that keeps nothing on disk; ready when it answers PING.

    It can be stopped and started again on the same port (:meth:`restart`), as a test of
    a lost broker does; its data does not survive that (no RDB, no AOF).
    """

    def __init__(self, port: int | None = None) -> None:
        port = free_port() if port is None else port
        # Its working folder, made at the first start: no dump should ever be written,
        # but if one were, it would not land in the repository.
        self._dir: str | None = None
        argv = [
            find_program("redis-server"),
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        super().__init__(argv, port=port, name="redis-server", scheme="redis")

    def start(self) -> RedisServer:
        if self._dir is None and not self._closed:
            self._dir = tempfile.mkdtemp(prefix="wsgisse-redis-")
            self.argv += ["--dir", self._dir]
        super().start()
        return self

    def __enter__(self) -> RedisServer:
        return self.start()

    def _is_ready(self) -> bool:
        return self.ping()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``, for ``redis.Redis.from_url``."""
        return f"redis://{self.host}:{self.port}/0"

    def ping(self) -> bool:
        """Send PING over a fresh connection; return whether the answer is PONG."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)


def redis_server(port: int | None = None) -> RedisServer:
    """A :class:`RedisServer` on ``port`` (default: a free one), not started yet."""
    return RedisServer(port)


# -- TLS ------------------------------------------------------------------------------------


def self_signed_certificate(directory: str | Path, host: str = HOST) -> tuple[Path, Path]:
    """Make a self-signed certificate for ``host`` in ``directory``; return (cert, key).

    The certificate names ``host`` as an IP address or DNS name (subjectAltName), so a
    client that trusts it (``ssl.create_default_context(cafile=cert)``) verifies the
    server fully; it is valid for a day. Made with the ``openssl`` program.
    """
    directory = Path(directory)
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        socket.inet_aton(host)
        san = f"IP:{host}"
    except OSError:
        san = f"DNS:{host}"
    subprocess.run(
        [
            find_program("openssl"),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName={san}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


# -- nginx and caddy ------------------------------------------------------------------------
# Reverse proxies go here, each a factory returning a ServerProcess like the ones above:
#   nginx_proxy(upstream_url, *, buffering=False) -> ServerProcess
#       `nginx -p TMPDIR -c nginx.conf -g "daemon off;"` with a generated config that
#       listens on a free port, logs to stderr, and proxies to the upstream;
#   caddy_proxy(upstream_url) -> ServerProcess
#       `caddy run --config Caddyfile --adapter caddyfile` with a generated Caddyfile.
# Resolve the programs with find_program("nginx") / find_program("caddy").


# -- a streaming client ---------------------------------------------------------------------


class StreamEndedError(EOFError):
    """The server ended the response before the awaited event arrived."""


def open_stream(
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = READ_TIMEOUT,
    last_event_id: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    source_address: str | None = None,
) -> EventStream:
    """GET ``url`` as an ``EventSource`` would, and return the response as it streams.

    Sends ``Accept: text/event-stream`` and ``Cache-Control: no-cache`` (and
    ``Last-Event-ID`` when given), then waits up to ``timeout`` seconds for the status
    line and headers. ``timeout`` is also the default for each later read.

    An ``https://`` URL is read over TLS with ``ssl_context`` (default: the system's
    verifying context; for a test certificate, ``ssl.create_default_context(cafile=...)``).
    The client offers only HTTP/1.1 (ALPN), so a proxy with HTTP/2 on answers in HTTP/1.1.
    ``source_address`` binds the client's socket first (``"127.0.0.2"``: another client
    of the same machine, as the server sees it).

    Raises:
        TimeoutError: no complete response head within ``timeout``.
        ConnectionError: the server closed the connection before the head was complete.
    """
    stream = EventStream(
        url,
        headers,
        timeout=timeout,
        last_event_id=last_event_id,
        ssl_context=ssl_context,
        source_address=source_address,
    )
    try:
        stream.connect()
    except BaseException:
        stream.close()
        raise
    return stream


class EventStream:
    """One streaming HTTP response, parsed into events as it arrives.

    Reads never break the stream: after a :class:`TimeoutError` the next read goes on
    where the last left off. The body may be chunked, have a Content-Length, or run until
    the server closes the connection.

    Attributes:
        status: the response status code.
        reason: the status line's reason phrase.
        headers: the response headers (``headers["Content-Type"]``, case-insensitive).
        body: every body byte received so far, decoded from its transfer coding.
        items: every event and comment parsed so far, in order.
        chunk_sizes: the size of each HTTP chunk received so far (chunked bodies).
        ended: whether the body has ended (or the connection closed).
        truncated: whether the connection closed before a chunked or sized body's end.
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = READ_TIMEOUT,
        last_event_id: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        source_address: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise ValueError(f"open_stream needs an http:// or https:// URL, not {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl_context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl_context = ssl_context or ssl.create_default_context()
            self.ssl_context.set_alpn_protocols(["http/1.1"])
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self.source_address = source_address
        self.request_headers = {
            "Host": f"{self.host}:{self.port}",
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
        }
        if last_event_id is not None:
            self.request_headers["Last-Event-ID"] = last_event_id
        self.request_headers.update(headers or {})
        self.status = 0
        self.reason = ""
        self.headers = http.client.HTTPMessage()
        self.body = bytearray()
        self.items: list[ParsedItem] = []
        self.chunk_sizes: list[int] = []
        self.ended = False
        self.truncated = False
        self._sock: socket.socket | None = None
        self._buffer = bytearray()  # received, not yet decoded from the transfer coding
        self._mode = "close"  # "chunked", "length" or "close"
        self._remaining = 0  # "length": body bytes left; "chunked": bytes left in chunk
        self._chunk_state = "size"  # "size", "data", "data-end", "trailers"
        self._pending: deque[ParsedItem] = deque()
        self._parser: EventStreamParser | None = None

    # -- connecting -------------------------------------------------------------------------

    def connect(self) -> EventStream:
        """Send the request and read the response head (see :func:`open_stream`)."""
        # Imported here so this module imports, and the servers start, even while the
        # parser is being written or is broken.
        from wsgisse._parser import EventStreamParser  # noqa: PLC0415

        self._parser = EventStreamParser(keep_comments=True)
        deadline = time.monotonic() + self.timeout
        source = None if self.source_address is None else (self.source_address, 0)
        self._sock = socket.create_connection(
            (self.host, self.port), timeout=self.timeout, source_address=source
        )
        if self.ssl_context is not None:
            self._sock = self.ssl_context.wrap_socket(self._sock, server_hostname=self.host)
        head = f"GET {self.target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in self.request_headers.items()
        )
        self._sock.sendall(head.encode("latin-1") + b"\r\n")
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if not self._recv(deadline):
                raise ConnectionError(
                    f"{self.url}: connection closed before the response head "
                    f"(got {bytes(self._buffer)!r})"
                )
        raw_head = bytes(self._buffer[: end + 4])
        del self._buffer[: end + 4]
        status_line, _, header_block = raw_head.partition(b"\r\n")
        version, status, reason = [*status_line.decode("latin-1").split(" ", 2), ""][:3]
        if not version.startswith("HTTP/1."):
            raise ConnectionError(f"{self.url}: not an HTTP/1.x response: {status_line!r}")
        self.status = int(status)
        self.reason = reason
        self.headers = http.client.parse_headers(io.BytesIO(header_block))
        encoding = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in encoding:
            self._mode = "chunked"
        elif self.headers.get("Content-Length") is not None:
            self._mode = "length"
            self._remaining = int(self.headers["Content-Length"])
            if self._remaining == 0:
                self._finish()
        elif self.status in (204, 304) or 100 <= self.status < 200:
            self._finish()
        return self

    # -- reading ----------------------------------------------------------------------------

    def read_body(self, timeout: float | None = None) -> bytes:
        """Return the next body bytes (decoded from chunking) as soon as some arrive.

        Returns ``b""`` once the body has ended.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` (default: the stream's).
        """
        deadline = self._deadline(timeout)
        while True:
            data = self._decode()
            if data or self.ended:
                return data
            if not self._recv(deadline):
                self._on_eof()

    def next_item(self, timeout: float | None = None) -> ParsedItem:
        """Return the next event or comment (:class:`wsgisse._parser.Comment`).

        Raises:
            TimeoutError: none arrived within ``timeout`` (default: the stream's).
            StreamEndedError: the body ended first.
        """
        deadline = self._deadline(timeout)
        while not self._pending:
            if self.ended:
                raise StreamEndedError(
                    f"{self.url}: the response ended; received {len(self.body)} body bytes"
                )
            data = self.read_body(max(deadline - time.monotonic(), 0.0))
            self._parse(data)
        return self._pending.popleft()

    def next_event(self, timeout: float | None = None) -> MessageEvent:
        """Return the next event a browser would dispatch, skipping comments.

        Raises:
            TimeoutError: none arrived within ``timeout`` (default: the stream's).
            StreamEndedError: the body ended first.
        """
        from wsgisse._parser import MessageEvent  # noqa: PLC0415

        deadline = self._deadline(timeout)
        while True:
            item = self.next_item(max(deadline - time.monotonic(), 0.0))
            if isinstance(item, MessageEvent):
                return item

    def events(self, count: int, timeout: float | None = None) -> list[MessageEvent]:
        """Return the next ``count`` events, all within ``timeout`` seconds in total."""
        deadline = self._deadline(timeout)
        return [self.next_event(max(deadline - time.monotonic(), 0.0)) for _ in range(count)]

    def read_to_end(self, timeout: float | None = None) -> list[MessageEvent]:
        """Return every event until the server ends the body, within ``timeout`` in total.

        Raises:
            TimeoutError: the body had not ended within ``timeout``.
        """
        deadline = self._deadline(timeout)
        out = []
        while True:
            try:
                out.append(self.next_event(max(deadline - time.monotonic(), 0.0)))
            except StreamEndedError:
                return out

    def __iter__(self) -> Iterator[MessageEvent]:
        """Yield events until the body ends, each within the stream's timeout."""
        while True:
            try:
                yield self.next_event()
            except StreamEndedError:
                return

    @property
    def last_event_id(self) -> str:
        """The stream's last event ID, as ``EventSource.lastEventId`` would report it."""
        return self._parser.last_event_id if self._parser is not None else ""

    @property
    def retry(self) -> int | None:
        """The last ``retry`` the stream sent, in milliseconds, or ``None``."""
        return self._parser.retry if self._parser is not None else None

    def close(self) -> None:
        """Close the connection (the server sees the client go away)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _recv(self, deadline: float) -> bool:
        """Receive into the buffer; return False at EOF. Raise TimeoutError past deadline."""
        if self._sock is None:
            raise ConnectionError(f"{self.url}: the stream is closed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{self.url}: nothing received in time")
        # A timeout on a raw socket leaves it usable, unlike a socket.makefile() reader.
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"{self.url}: nothing received in time") from None
        except ConnectionResetError:
            data = b""
        if not data:
            return False
        self._buffer += data
        return True

    def _on_eof(self) -> None:
        self._finish()
        if self._mode == "close":
            return
        self.truncated = True
        raise StreamEndedError(
            f"{self.url}: connection closed in the middle of a {self._mode} body "
            f"(received {len(self.body)} body bytes)"
        )

    def _finish(self) -> None:
        self.ended = True
        if self._parser is not None:
            parsed = self._parser.end()
            self.items.extend(parsed)
            self._pending.extend(parsed)

    def _parse(self, data: bytes) -> None:
        if self._parser is None:
            raise RuntimeError("connect() first")
        parsed = self._parser.feed(data) if data else []
        self.items.extend(parsed)
        self._pending.extend(parsed)

    def _decode(self) -> bytes:
        """Take what the buffer holds of the body, undoing the transfer coding."""
        if self._mode == "close":
            out = bytes(self._buffer)
            self._buffer.clear()
        elif self._mode == "length":
            out = bytes(self._buffer[: self._remaining])
            del self._buffer[: len(out)]
            self._remaining -= len(out)
            if self._remaining == 0:
                self._finish()
        else:
            out = self._decode_chunked()
        self.body += out
        return out

    def _decode_chunked(self) -> bytes:
        out = bytearray()
        buf = self._buffer
        while not self.ended:
            if self._chunk_state == "size":
                end = buf.find(b"\r\n")
                if end < 0:
                    break
                size_field = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                self._remaining = int(size_field, 16)
                self.chunk_sizes.append(self._remaining)
                self._chunk_state = "data" if self._remaining else "trailers"
            elif self._chunk_state == "data":
                if not buf:
                    break
                piece = buf[: self._remaining]
                out += piece
                del buf[: len(piece)]
                self._remaining -= len(piece)
                if self._remaining == 0:
                    self._chunk_state = "data-end"
            elif self._chunk_state == "data-end":
                if len(buf) < 2:  # the CRLF after a chunk's data
                    break
                if buf[:2] != b"\r\n":
                    raise ConnectionError(f"{self.url}: bad chunked encoding: {bytes(buf)!r}")
                del buf[:2]
                self._chunk_state = "size"
            else:  # trailers: lines until an empty one
                end = buf.find(b"\r\n")
                if end < 0:
                    break
                del buf[: end + 2]
                if end == 0:
                    self._finish()
        return bytes(out)
