"""Runs the C load generator against a server and measures the server meanwhile."""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import time
from typing import Any

from benchmarks import _proc
from benchmarks._servers import BUILD, Server

LOADGEN = BUILD / "loadgen"
FLUSH = b"flush"

# Each run binds its connections to its own range of 127/8 source addresses
# (127.A.B.1-250), so that no run waits for the TIME_WAITs of the one before.
_sources = itertools.count(1)


def _source() -> str:
    n = next(_sources)
    return f"{10 + n // 250}.{n % 250}"


def settle(server: Server, bound: float = 30.0) -> int:
    """Wait until the server has forgotten the previous run's subscribers.

    A server notices a gone client only when a write to it fails, so a few events
    without a timestamp (the load generator ignores them) make every stale stream write.
    Returns how many subscribers were still counted at the bound.
    """
    deadline = time.monotonic() + bound
    count = _count(server)
    while count != 0 and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            server.publish(FLUSH)
        time.sleep(0.3)
        count = _count(server)
    return count


def _count(server: Server) -> int:
    """The server's subscriber count; -1 while it is too busy to answer."""
    try:
        return server.subscribers(timeout=10)
    except (OSError, ValueError, KeyError):
        return -1


def _wait_subscribed(server: Server, want: int, bound: float) -> int:
    """Poll the server's count until it reaches ``want`` or stops growing for a while."""
    deadline = time.monotonic() + bound
    best, best_at = -1, time.monotonic()
    while True:
        count = _count(server)
        if count >= want:
            return count
        if count > best:
            best, best_at = count, time.monotonic()
        if time.monotonic() > deadline or time.monotonic() - best_at > 10:
            return count
        time.sleep(0.2)


def run(
    server: Server,
    mode: str,
    conns: int,
    *,
    rate: float = 10,
    duration: float = 5,
    drain: float = 10,
    path: str = "/events",
    hold_rss: bool = False,
    warmup: float = 1.0,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """One load generator run; returns its RESULT plus the server's CPU, RSS, counts."""
    args = [
        str(LOADGEN), "--port", str(server.port), "--path", path, "--conns", str(conns),
        "--mode", mode, "--rate", str(rate), "--duration", str(duration),
        "--drain", str(drain), "--src", _source(), "--connect-timeout", "90",
        "--hold", "120", "--warmup", str(warmup),
    ]  # fmt: skip
    if server.spec.ready_on_sent:
        args.append("--ready-on-sent")
    args += extra or []
    pids = server.pids()
    out: dict[str, Any] = {"server": server.spec.name, "mode": mode, "conns": conns}
    if mode == "fanout":
        out["rate"] = rate
    rss_before = _proc.rss_kib(pids)
    cpu0 = cpu1 = busy0 = busy1 = 0.0
    t0 = t1 = 0.0
    with subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stdin is not None  # noqa: S101 - set by Popen above
        assert proc.stdout is not None  # noqa: S101
        try:
            for line in proc.stdout:
                word = line.split()
                if not word:
                    continue
                if word[0] == "PHASE" and word[1] == "connected":
                    if mode in ("fanout", "idle", "churn"):
                        out["server_subscribers"] = _wait_subscribed(server, conns, 60)
                    if mode == "idle":
                        time.sleep(2.0)  # let allocations settle before reading RSS
                        pids = server.pids()
                        out["rss_kib"] = _proc.rss_kib(pids)
                        out["rss_before_kib"] = rss_before
                        out["server_subscribers"] = _count(server)
                        proc.stdin.write("release\n")
                        proc.stdin.flush()
                    elif mode in ("fanout", "churn"):
                        proc.stdin.write("go\n")
                        proc.stdin.flush()
                    else:
                        cpu0, t0 = _proc.cpu_seconds(server.pids()), time.monotonic()
                elif word[0] == "PHASE" and word[1] == "measure_start":
                    pids = server.pids()
                    cpu0, t0 = _proc.cpu_seconds(pids), time.monotonic()
                    busy0 = _proc.machine_busy_seconds()
                elif word[0] == "PHASE" and word[1] == "drained":
                    cpu1, t1 = _proc.cpu_seconds(pids), time.monotonic()
                    busy1 = _proc.machine_busy_seconds()
                elif word[0] == "RESULT":
                    out.update(json.loads(line[len("RESULT ") :]))
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    if mode == "stream":
        cpu1, t1 = _proc.cpu_seconds(server.pids()), time.monotonic()
    if cpu1 and t1 > t0:
        out["cpu_s"] = round(cpu1 - cpu0, 3)
        out["wall_s"] = round(t1 - t0, 3)
        # Deliveries inside the CPU window: after the warm-up, until drained (stream
        # mode: every event since connected, the window the CPU was read over).
        received = out.get("received", 0) if mode == "stream" else out.get("window_events", 0)
        out["delivered_in_window"] = received
        if busy1:
            # What else the machine did meanwhile (other jobs, the kernel's softirqs not
            # billed to either side): a noisy run shows here.
            other = busy1 - busy0 - (cpu1 - cpu0) - out.get("loadgen_cpu_s", 0.0)
            out["background_cpu_s"] = round(max(other, 0.0), 3)
        if received:
            out["cpu_us_per_event"] = round((cpu1 - cpu0) * 1e6 / received, 2)
    return out
