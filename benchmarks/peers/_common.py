"""What every bench app shares: the token payload and the process figures for /stats."""

from __future__ import annotations

import gc
import os
import time

PAYLOAD_SIZE = 100


def token(seq: int) -> str:
    """A 100-byte event body in the load generator's format: ``@T<µs> S<seq> xxx...``.

    The timestamp is CLOCK_MONOTONIC in microseconds, the clock the load generator reads.
    """
    head = f"@T{time.monotonic_ns() // 1000:016d} S{seq:08d} "
    return head + "x" * (PAYLOAD_SIZE - len(head))


def process_figures() -> dict[str, int]:
    """Greenlets (live gc objects of that type), OS threads, open fds and RSS of this process."""
    gc.collect()
    try:
        from greenlet import greenlet  # noqa: PLC0415 - only the gevent apps have it

        greenlets = sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet))
    except ImportError:
        greenlets = -1
    rss_kib = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    return {
        "greenlets": greenlets,
        "threads": len(os.listdir("/proc/self/task")),
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_kib": rss_kib,
    }
