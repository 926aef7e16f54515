"""The one table: a row per (scenario, figure), a column per server, then the ratios.

The events-for-one-user scenarios (``targeted``, ``channels``...) have servers of their
own (wsgisse with an audience, wsgisse with a channel per user, Nchan with a channel per
subscriber): they follow as a second part of the table, with its own columns.
Under a figure whose runs were repeated, a ``min-max`` row gives their spread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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


#: The events-for-one-user part: its columns, and its ratios (numerator ÷ denominator:
#: each wsgisse variant ÷ Nchan's, and one channel with an audience ÷ a channel per user,
#: issue 11's "an event for one user costs at most 1.5x one on a single-subscriber
#: channel", best read in the delivery row).
USER_COLUMNS = [
    ("wsgisse-audience", "ws-audience"),
    ("wsgisse-channels", "ws-chan"),
    ("nchan-channels", "nchan-chan"),
]
USER_RATIOS = [
    ("wsgisse-audience", "nchan-channels", "aud÷nchan"),
    ("wsgisse-channels", "nchan-channels", "chan÷nchan"),
    ("wsgisse-audience", "wsgisse-channels", "aud÷chan"),
]
USER_KINDS = ("targeted", "channels", "chanmax", "idlechan")
#: The figures whose spread is printed (the JSON rows hold it for every figure).
HEADLINE = ("cpu_us_per_event", "events_per_s", "p99_us", "published_per_s", "pub_only_us")


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
    if kind in ("targeted", "channels"):
        return [
            ("CPU µs/event", "cpu_us_per_event", 1, 1, True),
            ("pub-only µs", "pub_only_us", 1, 1, True),
            ("delivery µs", "delivery_us", 1, 1, True),
            ("p50 ms", "p50_us", 1e-3, 1, True),
            ("p99 ms", "p99_us", 1e-3, 1, True),
            ("lost", "lost", 1, 0, False),
        ]
    if kind == "chanmax":
        return [
            ("published/s", "published_per_s", 1, 0, True),
            ("CPU µs/event", "cpu_us_per_event", 1, 1, True),
            ("p99 ms", "p99_us", 1e-3, 1, True),
            ("lost", "lost", 1, 0, False),
        ]
    if kind == "idlechan":
        return [
            ("B/chan empty", "bytes_per_channel_empty", 1, 0, True),
            ("B/chan 1 ev", "bytes_per_channel_one", 1, 0, True),
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


def _spread_line(
    name: str,
    by_cell: dict[tuple[str, str], dict[str, Any]],
    columns: list[tuple[str, str]],
    key: str,
    scale: float,
    digits: int,
) -> tuple[str, dict[str, list[float]]] | None:
    """The ``min-max`` row under a figure, when some cell's runs were repeated."""
    spreads: dict[str, list[float]] = {}
    for server, _ in columns:
        result = by_cell.get((name, server))
        pair = None if result is None else result.get("spread", {}).get(key)
        if pair is not None:
            spreads[server] = [pair[0] * scale, pair[1] * scale]
    if not spreads:
        return None
    line = f"{'':<16} {'  min-max':<13}"
    for server, _ in columns:
        pair = spreads.get(server)
        # Whole numbers past 100, so that the pair fits the column.
        places = 0 if pair is not None and pair[1] >= 100 else digits
        text = "" if pair is None else f"{_fmt(pair[0], places)}-{_fmt(pair[1], places)}"
        line += f"{text:>11}"
    return line, spreads


def _notes(
    name: str, by_cell: dict[tuple[str, str], dict[str, Any]], columns: list[tuple[str, str]]
) -> list[str]:
    notes: list[str] = []
    for server, _ in columns:
        result = by_cell.get((name, server))
        if result is None:
            continue
        notes.extend(
            f"{name} {server}: {flag}: {result[flag]}"
            for flag in ("error", "skipped")
            if flag in result
        )
        if result.get("reconnects"):
            notes.append(
                f"{name} {server}: {result['reconnects']} reconnects "
                f"(streams ended by the server, resumed with Last-Event-ID)"
            )
        if result.get("publish_skipped"):
            notes.append(
                f"{name} {server}: {result['publish_skipped']} publishes not "
                "sent (every publisher connection waiting on the server)"
            )
    return notes


def _figure_rows(
    name: str,
    figures: list[tuple[str, str, float, int, bool]],
    by_cell: dict[tuple[str, str], dict[str, Any]],
    columns: list[tuple[str, str]],
    ratios_of: Callable[[dict[str, float | None], bool], dict[str, float | None]],
    ratio_width: int,
) -> tuple[list[str], list[dict[str, Any]]]:
    """One scenario's lines and JSON rows: each figure's cells, its ratios, its spread."""
    lines: list[str] = []
    rows: list[dict[str, Any]] = []
    for label, key, scale, digits, has_ratio in figures:
        cells: dict[str, float | None] = {}
        for server, _ in columns:
            result = by_cell.get((name, server))
            value = None if result is None else result.get(key)
            cells[server] = None if value is None else value * scale
        ratios = ratios_of(cells, has_ratio)
        line = f"{name:<16} {label:<13}"
        line += "".join(f"{_fmt(cells[s], digits):>11}" for s, _ in columns)
        line += " |" + "".join(
            f"{_fmt(ratio, 2) if has_ratio else '':>{ratio_width}}" for ratio in ratios.values()
        )
        lines.append(line)
        row: dict[str, Any] = {"scenario": name, "figure": label, "values": cells, "ratios": ratios}
        spread = _spread_line(name, by_cell, columns, key, scale, digits)
        if spread is not None:
            row["spread"] = spread[1]
            if key in HEADLINE:
                lines.append(spread[0])
        rows.append(row)
    return lines, rows


def _peer_ratios(
    cells: dict[str, float | None], has_ratio: bool, *, three_workers: bool
) -> dict[str, float | None]:
    """wsgisse ÷ each peer, in RATIOS' order (3-worker rows: wsgisse's Redis backend)."""
    ours = cells["wsgisse-redis" if three_workers else "wsgisse"]
    ratios: dict[str, float | None] = {}
    for peer, _ in RATIOS:
        other = cells.get(peer)
        if peer == "wsgisse-flask":  # the Flask extension against plain WSGI
            flask_cell = cells["wsgisse-flask"]
            ok = has_ratio and flask_cell is not None and bool(ours)
            ratios[peer] = flask_cell / ours if ok and flask_cell is not None and ours else None
        elif peer == "wsgisse":  # redis÷mem
            redis_cell = cells["wsgisse-redis"]
            ok = not three_workers and redis_cell is not None
            ratios[peer] = redis_cell / other if ok and redis_cell is not None and other else None
        elif not has_ratio or ours is None or not other:
            ratios[peer] = None
        else:
            ratios[peer] = ours / other
    return ratios


def _user_ratios(cells: dict[str, float | None], has_ratio: bool) -> dict[str, float | None]:
    """The events-for-one-user ratios, in USER_RATIOS' order."""
    ratios: dict[str, float | None] = {}
    for top, bottom, title in USER_RATIOS:
        ours, other = cells[top], cells[bottom]
        ratios[title] = ours / other if has_ratio and ours is not None and other else None
    return ratios


def _user_part(
    by_cell: dict[tuple[str, str], dict[str, Any]], scenarios: list[Any]
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """The events-for-one-user scenarios: lines, JSON rows, notes."""
    head = f"{'scenario':<16} {'figure':<13}" + "".join(f"{t:>11}" for _, t in USER_COLUMNS)
    head += " |" + "".join(f"{t:>11}" for _, _, t in USER_RATIOS)
    lines = [head, "-" * len(head)]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for scenario in scenarios:
        scenario_lines, scenario_rows = _figure_rows(
            scenario.name, _figures(scenario.kind), by_cell, USER_COLUMNS, _user_ratios, 11
        )
        lines += scenario_lines
        rows += scenario_rows
        notes.extend(_notes(scenario.name, by_cell, USER_COLUMNS))
    lines.append("")
    lines.append(
        "Events for one user: ws-audience is one wsgisse channel, each event published "
        "with audience=[user]; ws-chan a wsgisse channel per user; nchan-chan an Nchan "
        "channel per subscriber. CPU per delivered event (each event reaches one "
        "subscriber); pub-only: CPU per publish with nobody subscribed; delivery: the "
        "difference; published/s: "
        "publishes answered per second (10,000 offered); B/chan: RSS growth per channel "
        "with no subscriber (Nchan: made by publishing one message to each)."
    )
    return lines, rows, notes


def render_table(
    results: list[dict[str, Any]], scenarios: list[Any]
) -> tuple[str, list[dict[str, Any]]]:
    """The table as text, and as rows for the JSON file."""
    by_cell = {(r["scenario"], r["server"]): r for r in results}
    user_scenarios = [s for s in scenarios if s.kind in USER_KINDS]
    scenarios = [s for s in scenarios if s.kind not in USER_KINDS]
    head = f"{'scenario':<16} {'figure':<13}" + "".join(f"{t:>11}" for _, t in COLUMNS)
    head += " |" + "".join(f"{t:>10}" for _, t in RATIOS)
    lines = [head, "-" * len(head)]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for scenario in scenarios:
        kind = "fanout" if scenario.kind in ("redis3w", "redis2w") else scenario.kind
        scenario_lines, scenario_rows = _figure_rows(
            scenario.name,
            _figures(kind),
            by_cell,
            COLUMNS,
            functools.partial(_peer_ratios, three_workers=scenario.kind == "redis3w"),
            10,
        )
        lines += scenario_lines
        rows += scenario_rows
        notes.extend(_notes(scenario.name, by_cell, COLUMNS))
    lines.append("")
    lines.append(
        "CPU: server processes' utime+stime (all workers, Redis included where used) per "
        "delivered event; p50/p99: publish-to-receive; lost: events a stream never got "
        "(after its drain). Ratios: wsgisse ÷ peer (3-worker rows: wsgisse Redis ÷ peer); "
        "redis÷mem: wsgisse Redis backend ÷ memory backend. C ceil: trivial C server. "
        "min-max: the spread of the repeated runs (the row above is their median run)."
    )
    if not scenarios:  # only the events-for-one-user part was run
        lines = []
    if user_scenarios:
        user_lines, user_rows, user_notes = _user_part(by_cell, user_scenarios)
        lines += ["", *user_lines] if lines else user_lines
        rows += user_rows
        notes += user_notes
    lines.extend(f"note: {note}" for note in notes)
    return "\n".join(lines), rows
