"""A live monitor with Bottle: the server's CPU and memory use, every second.

One sampling thread publishes a ``stats`` event each second through the Bottle plugin,
which serves the channel at ``/events``; the data is JSON::

    {"cpu": 12.5, "memory": {"used": 2147483648, "total": 8589934592, "percent": 25.0}}

The numbers come from ``/proc/stat`` and ``/proc/meminfo``, so this example runs on
Linux only (psutil would make it portable, at the cost of a dependency).

Run it, and open http://127.0.0.1:8000 (``$HOST`` and ``$PORT`` override)::

    python examples/monitor.py

In production, with gunicorn's gevent workers::

    gunicorn -k gevent --chdir examples 'monitor:create_app()'
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import bottle

import wsgisse
from wsgisse.integrations.bottle import SSEPlugin

PROC = Path("/proc")

PAGE = """\
<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>wsgisse monitor</title>
<style>
  body { font: 1.2rem system-ui, sans-serif; margin: 2rem; }
  meter { width: 20rem; height: 1.5rem; }
  output { font-family: ui-monospace, monospace; }
</style>
<h1>Server monitor</h1>
<p>CPU <meter id="cpu-meter" max="100"></meter> <output id="cpu">…</output></p>
<p>Memory <meter id="memory-meter" max="100"></meter> <output id="memory">…</output></p>
<p id="status"></p>
<script type="module">
  // wsgisse.js, the browser client, served next to the stream. Relative URLs, so the page
  // also works mounted under a prefix (see demo.py).
  import { WsgisseEventSource } from "./events/wsgisse.js";

  const gib = (bytes) => (bytes / 2 ** 30).toFixed(1) + " GiB";
  const status = document.getElementById("status");
  const source = new WsgisseEventSource("events", {
    share: true,
    // Each sample stands alone: a gap in the history needs no reload.
    onHistoryLost: () => { status.textContent = "(samples missed while away)"; },
    onEnd: (reason) => { if (reason === "revoked") status.textContent = "stopped"; },
  });
  window.source = source;
  source.addEventListener("stats", (event) => {
    const {cpu, memory} = JSON.parse(event.data);
    document.getElementById("cpu-meter").value = cpu;
    document.getElementById("cpu").textContent = cpu.toFixed(1) + " %";
    document.getElementById("memory-meter").value = memory.percent;
    document.getElementById("memory").textContent =
      `${gib(memory.used)} of ${gib(memory.total)} (${memory.percent.toFixed(1)} %)`;
  });
</script>
"""


def cpu_times() -> tuple[int, int]:
    """The CPU time spent idle and in total since boot, in clock ticks (``/proc/stat``)."""
    fields = [int(n) for n in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return idle + iowait, user + nice + system + idle + iowait + irq + softirq + steal


def memory() -> dict[str, float]:
    """Memory in use and in total, in bytes (``/proc/meminfo``, which counts in kB)."""
    info: dict[str, int] = {}
    for line in (PROC / "meminfo").read_text().splitlines():
        name, _, value = line.partition(":")
        info[name] = int(value.split()[0]) * 1024
    total, used = info["MemTotal"], info["MemTotal"] - info["MemAvailable"]
    return {"used": used, "total": total, "percent": round(100 * used / total, 1)}


def sample(sse: SSEPlugin, interval: float = 1.0) -> None:
    """Publish a ``stats`` event every ``interval`` seconds, forever."""
    idle, total = cpu_times()
    while True:
        time.sleep(interval)
        now_idle, now_total = cpu_times()
        busy = 1 - (now_idle - idle) / max(now_total - total, 1)
        idle, total = now_idle, now_total
        stats: dict[str, Any] = {"cpu": round(100 * busy, 1), "memory": memory()}
        sse.publish(stats, event="stats")


def create_app() -> bottle.Bottle:
    """Make the monitor app and start its sampler (a daemon thread; a greenlet under gevent).

    The page is at ``/`` and the event stream at ``/events``.

    Raises:
        RuntimeError: there is no ``/proc`` to read (not Linux).
    """
    if not (PROC / "stat").is_file():
        raise RuntimeError("monitor.py reads /proc/stat and /proc/meminfo: it runs on Linux")
    app = bottle.Bottle()
    # A minute of history: a page that reconnects is replayed the samples it missed.
    sse = app.install(SSEPlugin(wsgisse.Channel("monitor", history=60)))

    @app.get("/")
    def index() -> str:
        return PAGE

    threading.Thread(target=sample, args=(sse,), name="monitor sampler", daemon=True).start()
    return app


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    run_simple(host, port, create_app(), threaded=True)
