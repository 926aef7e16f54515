"""Soak (issue 5): churn against one gunicorn gevent worker, then check nothing leaked.

    python -m benchmarks.soak                      # 3 minutes, 500 live connections
    python -m benchmarks.soak --minutes 10 --conns 2000

One wsgisse bench app on ``gunicorn -k gevent`` (1 worker) takes a bounded run of churn
from the C load generator: ``--conns`` connections kept open, each living a random
50 ms..``--life-ms`` and then closed (one in four with a TCP reset, some before their
response headers arrived) and replaced at once, while events are published at ``--rate``
per second throughout. Thousands of connects and disconnects in all.

The app's ``/stats?full=1`` reports live greenlets (gc objects of that type), OS threads,
open file descriptors, subscriptions and RSS. They are read three times: at the start
(idle, after a warm-up), after a first churn round (RSS: the allocator's high-water mark
is reached there), and at the end, once the churn stopped and the server had time to
notice every gone client (heartbeat 2 s here, and a few events published to make every
stale stream write).

Pass when, at the end against the start: subscriptions are 0, greenlets within
+``GREENLET_SLACK``, threads equal, fds within +``FD_SLACK``; and RSS at the end is within
``RSS_SLACK_KIB`` or ``RSS_SLACK_FRACTION`` (whichever is larger) of RSS after the first
round. Exit status 0 on pass, 1 on fail; figures also go to benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import _loadgen, _servers

GREENLET_SLACK = 5
FD_SLACK = 2
RSS_SLACK_KIB = 4096
RSS_SLACK_FRACTION = 0.05
HEARTBEAT = 2.0


def _quiesce(server: _servers.Server, bound: float = 60.0) -> dict[str, Any]:
    """Wait until the server holds no subscription and its greenlets stop shrinking."""
    deadline = time.monotonic() + bound
    _loadgen.settle(server, bound)
    stats = server.stats()
    while time.monotonic() < deadline:
        time.sleep(HEARTBEAT + 0.5)
        again = server.stats()
        if again["greenlets"] >= stats["greenlets"] and again["subscribers"] == 0:
            return again
        stats = again
    return stats


def _churn(server: _servers.Server, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    return _loadgen.run(
        server,
        "churn",
        args.conns,
        rate=args.rate,
        duration=seconds,
        warmup=0,
        extra=["--life-ms", str(args.life_ms), "--no-wait-go"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0, help="total churn time")
    parser.add_argument("--conns", type=int, default=500, help="connections open at once")
    parser.add_argument("--rate", type=float, default=10.0, help="events published per second")
    parser.add_argument("--life-ms", type=int, default=2000, help="longest connection life")
    parser.add_argument("--out", type=Path, default=_servers.BENCH / "results" / "soak.json")
    args = parser.parse_args(argv)
    spec = _servers.SPECS["wsgisse"]
    total = args.minutes * 60
    first_round = min(30.0, total / 4)
    with _servers.running(spec, heartbeat=HEARTBEAT) as server:
        _loadgen.run(server, "fanout", 20, rate=20, duration=1, drain=3, warmup=0.5)
        start = _quiesce(server)
        print(f"start:        {json.dumps(start)}", flush=True)
        churn1 = _churn(server, args, first_round)
        after_first = _quiesce(server)
        print(f"after round1: {json.dumps(after_first)}", flush=True)
        churn2 = _churn(server, args, total - first_round)
        end = _quiesce(server)
        print(f"end:          {json.dumps(end)}", flush=True)
    connects = churn1.get("churn_closes", 0) + churn2.get("churn_closes", 0)
    received = churn1.get("received", 0) + churn2.get("received", 0)
    published = churn1.get("published", 0) + churn2.get("published", 0)
    rss_allowed = max(RSS_SLACK_KIB, int(after_first["rss_kib"] * RSS_SLACK_FRACTION))
    checks = [
        ("subscriptions", end["subscribers"], 0, end["subscribers"] == 0),
        (
            "greenlets",
            end["greenlets"],
            f"<= {start['greenlets'] + GREENLET_SLACK}",
            end["greenlets"] <= start["greenlets"] + GREENLET_SLACK,
        ),
        ("threads", end["threads"], f"== {start['threads']}", end["threads"] == start["threads"]),
        ("fds", end["fds"], f"<= {start['fds'] + FD_SLACK}", end["fds"] <= start["fds"] + FD_SLACK),
        (
            "rss KiB",
            end["rss_kib"],
            f"<= {after_first['rss_kib'] + rss_allowed} (after round 1 + {rss_allowed})",
            end["rss_kib"] <= after_first["rss_kib"] + rss_allowed,
        ),
    ]
    print(
        f"\nchurn: {connects} connections closed and replaced in {args.minutes:g} min "
        f"({args.conns} open at once), {published} events published, {received} delivered, "
        f"{churn1.get('server_closes', 0) + churn2.get('server_closes', 0)} ended by the server"
    )
    print(f"{'figure':<14}{'start':>10}{'round 1':>10}{'end':>10}   limit")
    for name, key in [
        ("subscriptions", "subscribers"),
        ("greenlets", "greenlets"),
        ("threads", "threads"),
        ("fds", "fds"),
        ("rss KiB", "rss_kib"),
    ]:
        limit, ok = next((c[2], c[3]) for c in checks if c[0] == name)
        print(
            f"{name:<14}{start[key]:>10}{after_first[key]:>10}{end[key]:>10}   {limit}"
            f"  {'ok' if ok else 'FAIL'}"
        )
    passed = all(check[3] for check in checks)
    print("soak:", "PASS" if passed else "FAIL")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "passed": passed,
                "minutes": args.minutes,
                "conns": args.conns,
                "rate": args.rate,
                "connects": connects,
                "published": published,
                "delivered": received,
                "start": start,
                "after_first_round": after_first,
                "end": end,
                "churn": [churn1, churn2],
            },
            indent=1,
        )
        + "\n"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
