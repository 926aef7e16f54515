"""Profile the wsgisse fan-out with py-spy: where a gevent worker's CPU goes.

    python -m benchmarks.profiling                 # 1,000 x 10/s and 5,000 x 100/s
    python -m benchmarks.profiling --seconds 30

For each load, one wsgisse bench app on ``gunicorn -k gevent`` (1 worker) is driven by
the C load generator while ``py-spy record --nonblocking`` samples the worker. The raw
(collapsed) stacks go to benchmarks/results/profile-<load>.txt, and a summary (the
frames that hold most samples: on top of the stack, and anywhere in it; and the same by
source file) is printed and written to benchmarks/results/profile-summary.md. Samples
of the hub waiting in epoll are idle and not counted (py-spy's default), so percentages
are of the time the worker was busy.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import threading
from pathlib import Path

from benchmarks import _loadgen, _servers

RESULTS = _servers.BENCH / "results"
PY_SPY = Path(sys.executable).parent / "py-spy"
LOADS = [(1000, 10.0), (5000, 100.0)]
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _frame_name(frame: str, *, with_line: bool = False) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    name = f"{match['func']} ({_short(match['file'])}"
    if with_line and match["line"]:
        name += f":{match['line']}"
    return name + ")"


def summarise(raw: Path, top: int = 15) -> str:
    """The top frames of a py-spy raw file, as a Markdown section."""
    self_time: collections.Counter[str] = collections.Counter()
    self_line: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        self_time[_frame_name(leaf)] += count
        self_line[_frame_name(leaf, with_line=True)] += count
        match = _FRAME.match(leaf.strip())
        by_file[_short(match["file"]) if match else "?"] += count
        for name in {_frame_name(f) for f in frames}:
            inclusive[name] += count
    if total == 0:
        return f"### {raw.name}\n\nno samples\n"

    def table(counter: collections.Counter[str], title: str) -> str:
        rows = [f"| {title} | % of busy samples |", "| --- | ---: |"]
        rows += [f"| `{k}` | {100 * v / total:.1f} |" for k, v in counter.most_common(top)]
        return "\n".join(rows)

    return "\n\n".join(
        [
            f"### {raw.stem} ({total} busy samples)",
            table(self_time, "on top of the stack (self)"),
            table(by_file, "self, by source file"),
            table(inclusive, "anywhere in the stack (inclusive)"),
            table(self_line, "self, by line"),
        ]
    )


def profile(conns: int, rate: float, seconds: float) -> Path:
    raw = RESULTS / f"profile-{conns}x{rate:g}.txt"
    with _servers.running(_servers.SPECS["wsgisse"]) as server:
        _loadgen.run(server, "fanout", 20, rate=20, duration=1, drain=3, warmup=0.5)
        _loadgen.settle(server)
        worker = server.worker_pids()[0]
        command = [
            str(PY_SPY), "record", "--pid", str(worker), "--duration", str(int(seconds)),
            "--rate", "250", "--format", "raw", "--output", str(raw), "--nonblocking",
        ]  # fmt: skip
        spy: list[subprocess.Popen[bytes]] = []

        def start_spy() -> None:
            spy.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))

        # py-spy starts once the subscribers are connected: a timer a little after the
        # connect phase (the load generator publishes for longer than py-spy records).
        timer = threading.Timer(conns / 2000 + 3, start_spy)
        timer.start()
        result = _loadgen.run(server, "fanout", conns, rate=rate, duration=seconds + 6, drain=5)
        timer.cancel()
        for proc in spy:
            proc.wait(timeout=60)
        print(
            f"{conns} x {rate:g}/s: {result.get('cpu_us_per_event')} µs/event, "
            f"p99 {result.get('p99_us')} µs, lost {result.get('lost')}",
            flush=True,
        )
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections = [summarise(profile(conns, rate, args.seconds)) for conns, rate in LOADS]
    text = "\n\n".join(sections) + "\n"
    (RESULTS / "profile-summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
