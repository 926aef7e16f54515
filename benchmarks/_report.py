"""The one table: a row per (scenario, figure), a column per server, then the ratios."""

from __future__ import annotations

from typing import Any

COLUMNS = [
    ("blaster", "C ceil"),
    ("wsgisse", "wsgisse"),
    ("wsgisse-redis", "ws-redis"),
    ("wsgisse-flask", "ws-flask"),
    ("sse-starlette", "starlette"),
    ("flask-sse", "flask-sse"),
    ("gevent-minimal", "gevent-min"),
    ("nchan", "nchan"),
]
#: wsgisse divided by each peer. In the 3-worker rows "wsgisse" is the Redis backend.
RATIOS = [
    ("sse-starlette", "÷starl"),
    ("gevent-minimal", "÷gev"),
    ("nchan", "÷nchan"),
    ("flask-sse", "÷fsse"),
    ("wsgisse", "redis÷mem"),
    ("wsgisse-flask", "flask÷mem"),
]


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10000:  # thousands get separators, no decimals
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _figures(kind: str) -> list[tuple[str, str, float, int, bool]]:
    """(label, key, scale, digits, has_ratio) for each figure of a scenario kind."""
    if kind == "idle":
        return [
            ("held conns", "held", 1, 0, False),
            ("KiB per conn", "kib_per_conn", 1, 1, True),
        ]
    if kind == "stream":
        return [
            ("events/s", "events_per_s", 1, 0, True),
            ("CPU µs/event", "cpu_us_per_event", 1, 1, True),
        ]
    return [
        ("CPU µs/event", "cpu_us_per_event", 1, 1, True),
        ("p50 ms", "p50_us", 1e-3, 1, True),
        ("p99 ms", "p99_us", 1e-3, 1, True),
        ("lost", "lost", 1, 0, False),
    ]


def render_table(
    results: list[dict[str, Any]], scenarios: list[Any]
) -> tuple[str, list[dict[str, Any]]]:
    """The table as text, and as rows for the JSON file."""
    by_cell = {(r["scenario"], r["server"]): r for r in results}
    head = f"{'scenario':<16} {'figure':<13}" + "".join(f"{t:>11}" for _, t in COLUMNS)
    head += " |" + "".join(f"{t:>10}" for _, t in RATIOS)
    lines = [head, "-" * len(head)]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for scenario in scenarios:
        for label, key, scale, digits, has_ratio in _figures(
            "fanout" if scenario.kind in ("redis3w", "redis2w") else scenario.kind
        ):
            cells: dict[str, float | None] = {}
            for server, _ in COLUMNS:
                result = by_cell.get((scenario.name, server))
                value = None if result is None else result.get(key)
                cells[server] = None if value is None else value * scale
            ours = cells["wsgisse-redis" if scenario.kind == "redis3w" else "wsgisse"]
            ratios: dict[str, float | None] = {}
            for peer, _ in RATIOS:
                other = cells.get(peer)
                if peer == "wsgisse-flask":  # the Flask extension against plain WSGI
                    flask_cell = cells["wsgisse-flask"]
                    ok = has_ratio and flask_cell is not None and bool(ours)
                    ratios[peer] = flask_cell / ours if ok and ours else None
                    continue
                if peer == "wsgisse":
                    ours_r = cells["wsgisse-redis"]
                    ok = scenario.kind != "redis3w" and ours_r is not None
                    ratios[peer] = ours_r / other if ok and other else None
                    continue
                if not has_ratio or ours is None or not other:
                    ratios[peer] = None
                else:
                    ratios[peer] = ours / other
            line = f"{scenario.name:<16} {label:<13}"
            line += "".join(f"{_fmt(cells[s], digits):>11}" for s, _ in COLUMNS)
            line += " |" + "".join(
                f"{_fmt(ratios[p], 2) if has_ratio else '':>10}" for p, _ in RATIOS
            )
            lines.append(line)
            rows.append(
                {"scenario": scenario.name, "figure": label, "values": cells, "ratios": ratios}
            )
        for server, _ in COLUMNS:
            result = by_cell.get((scenario.name, server))
            if result is None:
                continue
            notes.extend(
                f"{scenario.name} {server}: {flag}: {result[flag]}"
                for flag in ("error", "skipped")
                if flag in result
            )
            if result.get("reconnects"):
                notes.append(
                    f"{scenario.name} {server}: {result['reconnects']} reconnects "
                    f"(streams ended by the server, resumed with Last-Event-ID)"
                )
            if result.get("publish_skipped"):
                notes.append(
                    f"{scenario.name} {server}: {result['publish_skipped']} publishes not "
                    "sent (all 8 publisher connections waiting on the server)"
                )
    lines.append("")
    lines.append(
        "CPU: server processes' utime+stime (all workers, Redis included where used) per "
        "delivered event; p50/p99: publish-to-receive; lost: events a stream never got "
        "(after its drain). Ratios: wsgisse ÷ peer (3-worker rows: wsgisse Redis ÷ peer); "
        "redis÷mem: wsgisse Redis backend ÷ memory backend. C ceil: trivial C server."
    )
    lines.extend(f"note: {note}" for note in notes)
    return "\n".join(lines), rows
