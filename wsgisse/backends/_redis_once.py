"""Idempotent publishing for the Redis backend: one stored event per idempotency key.

After a publish timed out, Redis may or may not have stored the event (it may be stuck,
with the ``XADD`` in its input buffer, and run it later). Retrying an ordinary publish
may then store it twice. A publish with a key runs one Lua script, atomically: if the
key's marker exists, it returns the id stored under it and adds nothing; otherwise it
adds the entry and sets the marker to its id (with an expiry). However many attempts
reach Redis, in whatever order, one entry is stored, and every attempt that gets an
answer gets its id.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ONCE_SCRIPT", "ONCE_TTL", "marker_key", "read_reply", "script_args"]

#: Seconds a key's marker is kept: a retry within that time can never store twice. A
#: day covers a task queue's retry schedule; markers cost about 100 bytes each.
ONCE_TTL = 86_400

# KEYS[1] the stream, KEYS[2] the marker. ARGV[1] the marker's TTL, ARGV[2] the MAXLEN
# ("" for none), ARGV[3] the MINID to trim to ("" for none), then the entry's fields and
# values. Returns {id, 1} when it stored the entry, {id, 0} when the marker had it.
ONCE_SCRIPT = """
local done = redis.call('GET', KEYS[2])
if done then return {done, 0} end
local args = {KEYS[1]}
if ARGV[2] ~= '' then
  table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, ARGV[2])
end
table.insert(args, '*')
for i = 4, #ARGV do table.insert(args, ARGV[i]) end
local id = redis.call('XADD', unpack(args))
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', ARGV[3]) end
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
return {id, 1}
"""


def marker_key(stream_key: str, key: str) -> str:
    """The key of the marker of idempotency key ``key`` on stream ``stream_key``."""
    return f"{stream_key}@once:{key}"


def script_args(
    ttl: int, maxlen: int | None, minid: str | None, fields: dict[Any, Any]
) -> list[Any]:
    """The script's ARGV for one publish."""
    args: list[Any] = [ttl, "" if maxlen is None else maxlen, minid or ""]
    for name, value in fields.items():
        args += [name, value]
    return args


def read_reply(reply: Any) -> tuple[str, bool]:
    """The script's answer as ``(stream id, whether this call stored it)``."""
    entry_id, stored = reply[0], reply[1]
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return text, int(stored) == 1
