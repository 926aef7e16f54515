"""The scenarios of events for one user: targeted events, a channel per user, idle channels.

Each connection of the load generator asks for its own path (``/events?user=u7``,
``/events?channel=u7``, Nchan's ``/sub/u7``) and each publish is aimed at one of them,
round-robin (``/publish?user=u7``...): loadgen's ``--path-pattern`` and
``--pub-path-pattern``. A connection expects exactly the events aimed at it, and lost is
counted per connection. See benchmarks/README.rst, "Events for one user, a channel per
user".
"""

from __future__ import annotations

import functools
import http.client
import json
import time
from typing import TYPE_CHECKING, Any

from benchmarks import _loadgen, _proc, _servers

if TYPE_CHECKING:
    from benchmarks.__main__ import Bench, Scenario

#: The kinds of scenario this module runs, and on which servers (in this order).
SERVERS = {
    "targeted": ["wsgisse-audience", "wsgisse-channels", "nchan-channels"],
    "channels": ["wsgisse-channels", "nchan-channels"],
    "chanmax": ["wsgisse-channels", "nchan-channels"],
    "idlechan": ["wsgisse-channels", "nchan-channels"],
}
KINDS = tuple(SERVERS)
DRAIN = 10.0
PUB_CONNS = 32
#: Publishes per second that make Nchan's idle channels (one message each): well below
#: the nearly 10,000/s one Nchan worker answers here, so that few are skipped (a few
#: hundred of 100,000 on a busy machine; the figure is per channel Nchan counts).
CHANNEL_PUBLISH_RATE = 4000.0


def servers_for(wanted: list[str]) -> list[str]:
    """The servers of these scenarios to run: all, or those named (``wsgisse`` and
    ``nchan`` name their variants here too)."""
    every = list(dict.fromkeys(name for names in SERVERS.values() for name in names))
    if not wanted:
        return every
    return [name for name in every if name in wanted or name.split("-")[0] in wanted]


def _patterns(spec: _servers.Spec, targets: int | None = None) -> list[str]:
    assert spec.sub_pattern is not None  # noqa: S101 - only the servers above are run
    assert spec.pub_pattern is not None  # noqa: S101
    extra = ["--path-pattern", spec.sub_pattern, "--pub-path-pattern", spec.pub_pattern]
    # Thousands of publishes per second go out in 1 ms batches: enough connections that
    # a batch, or a moment the machine is busy elsewhere, never finds them all waiting.
    extra += ["--pub-conns", str(PUB_CONNS)]
    if targets is not None:
        extra += ["--pub-targets", str(targets)]
    return extra


def _warm(server: _servers.Server) -> None:
    """A few connections and aimed events first, so that lazy imports are not measured."""
    _loadgen.run(
        server, "fanout", 20, rate=20, duration=1, drain=3, warmup=0.5,
        extra=_patterns(server.spec),
    )  # fmt: skip
    _loadgen.settle(server)


def _loaded_once(server: _servers.Server, scenario: Scenario) -> dict[str, Any]:
    """One run: ``conns`` subscribers, each publish aimed at one of them."""
    result = _loadgen.run(
        server, "fanout", scenario.conns, rate=scenario.rate, duration=scenario.duration,
        drain=DRAIN, extra=_patterns(server.spec),
    )  # fmt: skip
    published = result.get("window_published", 0)
    if published:
        result["published_per_s"] = round(published / scenario.duration)
    return result


def _publish_only(server: _servers.Server, scenario: Scenario) -> dict[str, Any]:
    """The same publishes with nobody subscribed: what publishing alone costs.

    The channels (Nchan's, wsgisse's per-user ones) exist from the loaded runs, so this
    is a publish into a live channel that has no subscriber.
    """
    run = _loadgen.run(
        server, "fanout", 0, rate=scenario.rate, duration=scenario.duration, drain=1,
        extra=_patterns(server.spec, scenario.conns),
    )  # fmt: skip
    keys = ("published", "window_published", "publish_skipped", "cpu_s", "wall_s")
    brief = {key: run[key] for key in keys if key in run}
    if run.get("cpu_s") is not None and run.get("window_published"):
        brief["cpu_us_per_publish"] = round(run["cpu_s"] * 1e6 / run["window_published"], 2)
    return brief


def _add_publish_only(result: dict[str, Any], server: _servers.Server, scenario: Scenario) -> None:
    """The publish-only runs (as many as the loaded ones; their median), and delivery.

    ``delivery_us`` is the loaded run's CPU per event less the publish-only CPU per
    publish: what reaching the one subscriber cost. A difference of two figures of a few
    hundred µs each, so it carries the noise of both.
    """
    runs = [_publish_only(server, scenario) for _ in range(scenario.repeats)]
    good = [run for run in runs if run.get("cpu_us_per_publish") is not None]
    if not good:
        result["publish_only"] = runs
        return
    good.sort(key=lambda run: float(run["cpu_us_per_publish"]))
    chosen = good[len(good) // 2]
    result["publish_only"] = {**chosen, "repeats": [run["cpu_us_per_publish"] for run in good]}
    per_publish = float(chosen["cpu_us_per_publish"])
    result["pub_only_us"] = per_publish
    if len(good) > 1:
        pair = [good[0]["cpu_us_per_publish"], good[-1]["cpu_us_per_publish"]]
        result.setdefault("spread", {})["pub_only_us"] = pair
    if result.get("cpu_us_per_event") is not None:
        result["delivery_us"] = round(result["cpu_us_per_event"] - per_publish, 2)


def run_server(bench: Bench, name: str, chosen: list[Scenario]) -> None:
    """The loaded scenarios (targeted, channels, chanmax) of ``chosen`` on one server."""
    live = [s for s in chosen if s.kind in ("targeted", "channels", "chanmax")]
    live = [s for s in live if name in SERVERS[s.kind]]
    if not live:
        return
    spec = _servers.SPECS[name]
    why = _servers.available(spec)
    if why is not None:
        for scenario in live:
            bench.record(scenario, name, {"skipped": why})
        return
    try:
        with _servers.running(spec) as server:
            _warm(server)
            for scenario in live:
                if bench.out_of_time():
                    bench.record(scenario, name, {"skipped": "time budget"})
                    continue
                if server.proc.poll() is not None:
                    bench.record(scenario, name, {"error": "server exited"})
                    continue
                once = functools.partial(_loaded_once, server, scenario)
                result = bench.repeat(scenario, server, once)
                if scenario.kind != "chanmax" and "error" not in result:
                    _loadgen.settle(server)
                    _add_publish_only(result, server, scenario)
                    _loadgen.settle(server)
                bench.record(scenario, name, result)
    except Exception as exc:  # noqa: BLE001 - a server that cannot start is a table cell
        bench.record(live[0], name, {"error": f"{type(exc).__name__}: {exc}"})


def _rss_settled(server: _servers.Server) -> int:
    time.sleep(2.0)  # let the allocator and Nchan's shared memory settle
    return _proc.rss_kib(server.pids())


def _wsgisse_channels(server: _servers.Server, count: int, events: int) -> int:
    """Ask the app to make ``count`` more channels with ``events`` each; all it holds."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    try:
        conn.request("POST", f"/make-channels?n={count}&events={events}", body=b"")
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"/make-channels answered {status}")
    made: int = json.loads(body)["channels"]
    return made


def idle_channels(server: _servers.Server, count: int) -> dict[str, Any]:
    """RSS growth per channel with no subscriber: empty, and with one event each."""
    out: dict[str, Any] = {"channels": count}
    before = _rss_settled(server)
    out["rss_before_kib"] = before
    if server.spec.kind == "nchan":
        # Nchan makes a channel when a message is published to it: one message each.
        run = _loadgen.run(
            server, "fanout", 0, rate=CHANNEL_PUBLISH_RATE,
            duration=count / CHANNEL_PUBLISH_RATE, drain=1, warmup=0,
            extra=_patterns(server.spec, count),
        )  # fmt: skip
        held = server.nchan_status(timeout=30).get("channels", 0)
        after = _rss_settled(server)
        out.update(published=run.get("published"), held=held, rss_one_kib=after)
        if held:
            out["bytes_per_channel_one"] = round((after - before) * 1024 / held)
        return out
    made = _wsgisse_channels(server, count, 0)
    empty = _rss_settled(server)
    both = _wsgisse_channels(server, count, 1)
    one = _rss_settled(server)
    out.update(held=made, rss_empty_kib=empty, rss_one_kib=one)
    out["bytes_per_channel_empty"] = round((empty - before) * 1024 / made)
    out["bytes_per_channel_one"] = round((one - empty) * 1024 / (both - made))
    return out


def run_idlechan(bench: Bench, scenario: Scenario, names: list[str]) -> None:
    """``scenario.conns`` idle channels on a fresh server of each of ``names``."""
    for name in names:
        if name not in SERVERS["idlechan"]:
            continue
        spec = _servers.SPECS[name]
        why = _servers.available(spec)
        if why is not None or bench.out_of_time():
            bench.record(scenario, name, {"skipped": why or "time budget"})
            continue
        try:
            with _servers.running(spec) as server:
                result = idle_channels(server, scenario.conns)
        except Exception as exc:  # noqa: BLE001 - recorded in the table
            result = {"error": f"{type(exc).__name__}: {exc}"}
        bench.record(scenario, name, result)
