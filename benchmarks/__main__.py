"""Run the benchmark scenarios against every server and print one table.

    python -m benchmarks                    # everything (about 30 minutes)
    python -m benchmarks --quick            # 1,000 x 10/s fan-out, idle 1k, one stream...
    python -m benchmarks --only fanout-1000x10,wsgisse,nchan
    python -m benchmarks --list             # scenario and server names

``--only`` takes scenario names (or prefixes: ``idle``, ``fanout``) and server names,
comma-separated; the scenarios and servers named are run, every other is left out.
Results go to benchmarks/results/latest.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _loadgen, _servers, _users
from benchmarks._report import render_table

RESULTS = _servers.BENCH / "results"

#: Measured seconds of publishing per rate (after a 1 s warm-up): long enough that the
#: 10 ms CPU tick is small against the CPU measured, short enough for one run.
DURATION = {1: 8.0, 10: 5.0, 100: 4.0}
DRAIN = 10.0
#: Events/s, each for one user, in the targeted scenarios: what the slowest of the three
#: servers keeps up with on this machine with room to spare (README, "The scenarios").
TARGETED_RATE = 500.0
#: Events/s over the 10,000 channels of ``channels-10k`` (one every 5 s on each): one
#: gunicorn worker answers 2,300 to 4,000 publish requests per second here, so the
#: 10,000/s of one event per second on each channel is offered in ``channels-10k-max``.
CHANNELS_RATE = 2000.0


@dataclass(frozen=True)
class Scenario:
    name: str
    # idle | fanout | stream | redis3w | redis2w | targeted | channels | chanmax | idlechan
    kind: str
    conns: int = 0
    rate: float = 0
    repeats: int = 1
    #: Measured seconds of publishing (the events-for-one-user scenarios; the fan-out
    #: scenarios take theirs from DURATION).
    duration: float = 5.0


def scenarios(quick: bool) -> list[Scenario]:
    if quick:
        return [
            Scenario("idle-1k", "idle", 1000),
            Scenario("fanout-1000x10", "fanout", 1000, 10, repeats=3),
            Scenario("stream", "stream", 1, repeats=3),
            Scenario("targeted-1k", "targeted", 1000, TARGETED_RATE, duration=4.0),
        ]
    found = [Scenario(f"idle-{n // 1000}k", "idle", n) for n in (1000, 10000, 19000)]
    found.append(Scenario("stream", "stream", 1, repeats=3))
    for conns in (100, 1000, 5000):
        for rate in (1, 10, 100):
            repeats = 3 if (conns, rate) in ((1000, 10), (5000, 10)) else 1
            found.append(Scenario(f"fanout-{conns}x{rate}", "fanout", conns, rate, repeats))
    found.append(Scenario("redis3w-1000x10", "redis3w", 1000, 10, repeats=3))
    found.append(Scenario("redis2w-1000x10", "redis2w", 1000, 10, repeats=3))
    found.append(Scenario("redis2w-5000x10", "redis2w", 5000, 10, repeats=3))
    found += [
        Scenario("targeted-10k", "targeted", 10000, TARGETED_RATE, repeats=3, duration=8.0),
        Scenario("channels-10k", "channels", 10000, CHANNELS_RATE, repeats=3),
        Scenario("channels-10k-max", "chanmax", 10000, 10000, duration=4.0),
        Scenario("idlechan-100k", "idlechan", 100_000),
    ]
    return found


def every_scenario() -> list[Scenario]:
    """The full run's scenarios, then those only ``--quick`` runs (``--only`` finds both)."""
    full = scenarios(False)
    names = {s.name for s in full}
    return full + [s for s in scenarios(True) if s.name not in names]


FANOUT_SERVERS = ["blaster", "wsgisse", "wsgisse-redis", "wsgisse-flask", "sse-starlette",
                  "flask-sse", "gevent-minimal", "nchan"]  # fmt: skip
#: What is printed of each result as it comes (everything goes to the JSON file).
BRIEF = ("conns", "held", "kib_per_conn", "cpu_us_per_event", "p50_us", "p99_us", "lost",
         "reconnects", "events_per_s", "background_cpu_s", "error", "skipped",
         "repeats")  # fmt: skip
#: Across 3 workers: the Redis-backed servers, and Nchan (shared memory) as the yardstick.
REDIS3W_SERVERS = ["wsgisse-redis", "flask-sse", "nchan"]
#: One channel, subscribers spread over 2 workers on Redis, against 1 worker on memory.
REDIS2W_SERVERS = [("wsgisse-redis", 2), ("wsgisse", 1)]


def _warm(server: _servers.Server) -> None:
    """A few connections and events first, so that lazy imports are not measured."""
    _loadgen.run(server, "fanout", 20, rate=20, duration=1, drain=3, warmup=0.5)
    _loadgen.settle(server)


#: The figures whose spread over the repeated runs is kept (``spread``: [min, max]).
SPREAD_KEYS = ("cpu_us_per_event", "events_per_s", "p50_us", "p99_us", "lost",
               "published_per_s")  # fmt: skip


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose headline figure is the median (so its other figures agree with it).

    ``repeats`` lists every run's headline figure and ``spread`` the [min, max] of each
    figure over the runs, so that a table can show how far apart the runs were.
    """
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[0]
    key = "cpu_us_per_event" if good[0]["mode"] != "stream" else "events_per_s"
    ranked = sorted(good, key=lambda run: run.get(key) or 0)
    chosen = dict(ranked[len(ranked) // 2])
    chosen["repeats"] = [run.get(key) for run in good]
    if len(good) > 1:
        spread = {}
        for name in SPREAD_KEYS:
            values = [run[name] for run in good if run.get(name) is not None]
            if len(values) == len(good):
                spread[name] = [min(values), max(values)]
        chosen["spread"] = spread
    return chosen


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.deadline = time.monotonic() + args.budget * 60
        self.results: list[dict[str, Any]] = []

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def record(self, scenario: Scenario, server: str, result: dict[str, Any]) -> None:
        result = {"scenario": scenario.name, "server": server, **result}
        self.results.append(result)
        brief = {key: result[key] for key in BRIEF if key in result}
        print(f"  {scenario.name:<16} {server:<18} {json.dumps(brief)}", flush=True)

    def repeat(
        self, scenario: Scenario, server: _servers.Server, once: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        runs = []
        for _ in range(scenario.repeats):
            if self.out_of_time() and runs:
                break
            try:
                runs.append(once())
            except Exception as exc:  # noqa: BLE001 - recorded in the table, run goes on
                runs.append({"error": f"{type(exc).__name__}: {exc}"})
                traceback.print_exc()
            if server.proc.poll() is not None:
                break
            _loadgen.settle(server)
        return _median_run(runs)

    def fanout_once(self, server: _servers.Server, scenario: Scenario) -> dict[str, Any]:
        duration = DURATION.get(int(scenario.rate), 5.0)
        if self.args.quick:
            duration = min(duration, 4.0)
        return _loadgen.run(
            server, "fanout", scenario.conns, rate=scenario.rate, duration=duration, drain=DRAIN
        )

    def stream_once(self, server: _servers.Server) -> dict[str, Any]:
        result = _loadgen.run(server, "stream", 1, duration=3, path="/stream", warmup=1)
        result["events_per_s"] = round(result["window_events"] / result["window_seconds"])
        return result

    def idle_once(self, spec: _servers.Spec, scenario: Scenario) -> dict[str, Any]:
        with _servers.running(spec) as server:
            _warm(server)
            result = _loadgen.run(server, "idle", scenario.conns)
        held = min(result.get("server_subscribers", 0), result.get("held", 0))
        result["held"] = held
        if held > 0:
            result["kib_per_conn"] = round((result["rss_kib"] - result["rss_before_kib"]) / held, 2)
        return result

    def run_server(self, name: str, chosen: list[Scenario]) -> None:
        spec = _servers.SPECS[name]
        why = _servers.available(spec)
        for scenario in chosen:
            if scenario.kind in ("redis3w", "redis2w", *_users.KINDS):
                continue
            if why is not None:
                self.record(scenario, name, {"skipped": why})
                continue
            if scenario.kind == "idle":
                if name == "blaster":
                    continue
                if self.out_of_time():
                    self.record(scenario, name, {"skipped": "time budget"})
                    continue
                runs = []
                for _ in range(scenario.repeats):
                    try:
                        runs.append(self.idle_once(spec, scenario))
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        runs.append({"error": f"{type(exc).__name__}: {exc}"})
                self.record(scenario, name, runs[len(runs) // 2])
        live = [s for s in chosen if s.kind in ("fanout", "stream")]
        if why is not None or not live:
            return
        if not spec.has_stream:
            live = [s for s in live if s.kind != "stream"]
        server_cm = None
        try:
            server_cm = _servers.running(spec)
            server = server_cm.__enter__()
            _warm(server)
            for scenario in live:
                if self.out_of_time():
                    self.record(scenario, name, {"skipped": "time budget"})
                    continue
                if server.proc.poll() is not None:
                    self.record(scenario, name, {"error": "server exited"})
                    continue
                if scenario.kind == "stream":
                    result = self.repeat(scenario, server, lambda: self.stream_once(server))
                else:
                    result = self.repeat(
                        scenario, server, lambda sc=scenario: self.fanout_once(server, sc)
                    )
                self.record(scenario, name, result)
        except Exception as exc:  # noqa: BLE001 - a server that cannot start is a table cell
            self.record(live[0], name, {"error": f"{type(exc).__name__}: {exc}"})
        finally:
            if server_cm is not None:
                server_cm.__exit__(None, None, None)

    def run_redis3w(self, scenario: Scenario, names: list[str]) -> None:
        self.run_workers(scenario, [(name, 3) for name in names])

    def run_workers(self, scenario: Scenario, servers: list[tuple[str, int]]) -> None:
        """The fan-out scenario on each server with its number of workers."""
        for name, workers in servers:
            base = _servers.SPECS[name]
            spec = dataclasses.replace(base, workers=workers)
            why = _servers.available(spec)
            if why is not None:
                self.record(scenario, name, {"skipped": why})
                continue
            if self.out_of_time():
                self.record(scenario, name, {"skipped": "time budget"})
                continue
            try:
                with _servers.running(spec) as server:
                    _warm(server)
                    result = self.repeat(
                        scenario, server, lambda s=server: self.fanout_once(s, scenario)
                    )
                    result["workers"] = len(server.worker_pids())
            except Exception as exc:  # noqa: BLE001 - recorded in the table
                result = {"error": f"{type(exc).__name__}: {exc}"}
            self.record(scenario, name, result)


def _git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=_servers.ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _tree_stamp() -> str:
    """When wsgisse's source last changed: runs made across a change are not comparable."""
    newest = max(path.stat().st_mtime for path in (_servers.ROOT / "wsgisse").rglob("*.py"))
    return datetime.datetime.fromtimestamp(newest, datetime.timezone.utc).isoformat(
        timespec="seconds"
    )


def _merge(paths: list[Path], out: Path) -> int:
    """One table from saved results; a later file's cells replace an earlier file's."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    metas = []
    for path in paths:
        saved = json.loads(path.read_text())
        metas.append({"file": str(path), **saved["meta"]})
        for run in saved["runs"]:
            cells[(run["scenario"], run["server"])] = run
    results = list(cells.values())
    names = {run["scenario"] for run in results}
    chosen = [s for s in every_scenario() if s.name in names]
    table_text, table_rows = render_table(results, chosen)
    print(table_text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"meta": {"merged": metas}, "table": table_rows, "runs": results}, indent=1)
        + "\n"
    )
    print(f"\nwritten to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    description = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=description)
    parser.add_argument("--quick", action="store_true", help="the few-minutes subset")
    parser.add_argument("--only", default="", help="scenario and/or server names, comma-separated")
    parser.add_argument("--list", action="store_true", help="list scenario and server names")
    parser.add_argument("--budget", type=float, default=None, help="minutes before skipping")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--merge", type=Path, nargs="+", help="print one table from saved results files"
    )
    args = parser.parse_args(argv)
    if args.merge:
        return _merge(args.merge, args.out)
    if args.budget is None:
        args.budget = 10.0 if args.quick else 45.0
    every = scenarios(args.quick) if not args.only else every_scenario()
    if args.list:
        print("scenarios:", ", ".join(s.name for s in every_scenario()))
        print("servers:  ", ", ".join(_servers.SPECS))
        return 0
    if not _loadgen.LOADGEN.exists():
        print(f"error: {_loadgen.LOADGEN} is not built: run `make bench`", file=sys.stderr)
        return 2
    tokens = [t for t in args.only.split(",") if t]
    wanted_servers = [t for t in tokens if t in _servers.SPECS]
    wanted_scenarios = [t for t in tokens if t not in _servers.SPECS]
    chosen = [
        s
        for s in every
        if not wanted_scenarios
        or any(s.name == t or s.name.startswith(t + "-") for t in wanted_scenarios)
    ]
    if not chosen:
        print(f"error: no scenario matches {args.only!r} (see --list)", file=sys.stderr)
        return 2
    servers = wanted_servers or FANOUT_SERVERS
    user_servers = _users.servers_for(wanted_servers)
    # The events-for-one-user servers serve only their own scenarios.
    servers = [name for name in servers if name not in user_servers]
    bench = Bench(args)
    started = time.monotonic()
    tree_at_start = _tree_stamp()
    print(f"benchmarks: {len(chosen)} scenarios x {len(servers)} servers", flush=True)
    for name in servers:
        print(f"- {name}", flush=True)
        bench.run_server(name, chosen)
    for scenario in chosen:
        if scenario.kind == "redis3w":
            print("- across 3 workers", flush=True)
            bench.run_redis3w(scenario, [n for n in REDIS3W_SERVERS if n in servers])
        elif scenario.kind == "redis2w":
            print("- one channel over 2 Redis workers, against 1 memory worker", flush=True)
            bench.run_workers(scenario, [(n, w) for n, w in REDIS2W_SERVERS if n in servers])
    if any(s.kind in _users.KINDS for s in chosen):
        print("- events for one user, a channel per user", flush=True)
        for name in user_servers:
            _users.run_server(bench, name, chosen)
        for scenario in chosen:
            if scenario.kind == "idlechan":
                _users.run_idlechan(bench, scenario, user_servers)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_revision(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "minutes": round((time.monotonic() - started) / 60, 1),
        "quick": args.quick,
        "only": args.only,
        "load_average_at_end": os.getloadavg(),
        "wsgisse_source_changed_at_start": tree_at_start,
        "wsgisse_source_changed_at_end": _tree_stamp(),
    }
    if meta["wsgisse_source_changed_at_end"] != tree_at_start:
        print("warning: wsgisse's source changed during the run", file=sys.stderr)
    table_text, table_rows = render_table(bench.results, chosen)
    print()
    print(table_text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"meta": meta, "table": table_rows, "runs": bench.results}, indent=1) + "\n"
    )
    print(f"\nwritten to {args.out} ({meta['minutes']} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
