"""Stream ids and the replies of XREAD / XRANGE, for the Redis backend. Pure: no I/O.

redis-py shapes a reply according to the client's settings: keys and ids are ``bytes``,
or ``str`` with ``decode_responses=True``; an XREAD reply is a list of ``[key, entries]``
(RESP2) or, with ``protocol=3``, a dict ``{key: [entries]}`` whose values wrap the list
of entries in a one-item list (redis-py 8's ``parse_xread_resp3``); the fields of an
entry are a dict, or a flat list. A backend may be handed any such client,
so every shape is read here, and nothing else of the backend looks at one.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "AUDIENCE_FIELD",
    "BODY_FIELD",
    "Entry",
    "StreamId",
    "encode_audience",
    "field",
    "format_id",
    "parse_id",
    "read_entries",
    "read_streams",
    "redact_url",
    "split_streams",
]

#: The field of a stream entry that holds the encoded event, without its id line.
BODY_FIELD = b"body"
#: The field that holds, for an event published with an ``audience``, the users who may
#: receive it: a JSON array of strings. Absent: everybody.
AUDIENCE_FIELD = b"audience"

#: A stream id as two ints, ``(milliseconds, sequence)``, which compare as Redis orders them.
StreamId = tuple[int, int]

_U64 = 2**64


class Entry(NamedTuple):
    """One stream entry: its id as Redis writes it and as ints, the event, its audience.

    ``body`` is ``None`` when the entry holds no wsgisse event (no ``body`` field, or an
    ``audience`` that is no JSON array of strings): the reader steps over it, rather than
    send to everybody an event meant for some.
    """

    text: str
    id: StreamId
    body: bytes | None
    audience: frozenset[str] | None = None


def parse_id(value: str) -> StreamId | None:
    """The stream id ``"<ms>-<seq>"`` as ints, or ``None`` if ``value`` is not one.

    A ``Last-Event-ID`` is client input: anything that is not two decimal numbers below
    2**64 joined by ``-`` is no stream id (and so not in any log).
    """
    ms, sep, seq = value.partition("-")
    if not (sep and ms.isascii() and ms.isdigit() and seq.isascii() and seq.isdigit()):
        return None
    parsed = int(ms), int(seq)
    return parsed if parsed[0] < _U64 and parsed[1] < _U64 else None


def format_id(stream_id: StreamId) -> str:
    """``(ms, seq)`` as Redis writes it."""
    return f"{stream_id[0]}-{stream_id[1]}"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def encode_audience(audience: frozenset[str]) -> bytes:
    """The ``audience`` field's value: the users as a JSON array, sorted."""
    return json.dumps(sorted(audience), ensure_ascii=False, separators=(",", ":")).encode()


def field(fields: Any, name: bytes) -> bytes | None:
    """The value of field ``name`` of an entry's fields (a dict or a flat list), as bytes."""
    if isinstance(fields, (list, tuple)):
        fields = dict(zip(fields[::2], fields[1::2], strict=False))
    if not isinstance(fields, dict):
        return None
    value = fields.get(name, fields.get(name.decode()))
    if isinstance(value, str):
        return value.encode("utf-8")
    return value if isinstance(value, bytes) else None


def _entry(text: str, parsed: StreamId, fields: Any) -> Entry:
    body = field(fields, BODY_FIELD)
    raw_audience = field(fields, AUDIENCE_FIELD)
    if raw_audience is None:
        return Entry(text, parsed, body)
    try:
        users = json.loads(raw_audience)
    except ValueError:
        users = None
    if not isinstance(users, list) or not all(isinstance(user, str) for user in users):
        return Entry(text, parsed, None)
    return Entry(text, parsed, body, frozenset(users))


def read_entries(raw: Any) -> list[Entry]:
    """The entries of an XRANGE / XREVRANGE reply (or of one stream of XREAD), in order.

    An entry whose id is not a stream id is left out.
    """
    entries = []
    for entry_id, fields in raw or ():
        text = _text(entry_id)
        parsed = parse_id(text)
        if parsed is not None:
            entries.append(_entry(text, parsed, fields))
    return entries


def split_streams(raw: Any) -> list[tuple[str, Any]]:
    """An XREAD reply as ``[(key, raw entries), ...]``, in every shape redis-py gives.

    Empty for a timeout (``None``, ``[]`` or ``{}``). The raw entries are what
    :func:`read_entries` reads.
    """
    if not raw:
        return []
    if not isinstance(raw, dict):
        return [(_text(key), entries) for key, entries in raw]
    streams = []
    for key, wrapped in raw.items():
        # RESP3: {key: [[entry, entry, ...]]}. An entry is a pair (id, fields) whose id
        # is bytes or str, so a first item that is itself a list of pairs is the wrapper.
        entries = wrapped
        if isinstance(wrapped, list) and len(wrapped) == 1 and _is_entry_list(wrapped[0]):
            entries = wrapped[0]
        streams.append((_text(key), entries))
    return streams


def _is_entry_list(value: Any) -> bool:
    if not isinstance(value, list):
        return False
    first = value[0] if value else None
    return first is None or (
        isinstance(first, (list, tuple))
        and len(first) == 2  # noqa: PLR2004 - an entry is a pair
        and not isinstance(first[0], list)
    )


def read_streams(raw: Any) -> list[tuple[str, list[Entry]]]:
    """An XREAD reply as ``[(key, entries), ...]``; empty for a timeout (``None``)."""
    streams = []
    for key, entries in split_streams(raw):
        read = read_entries(entries)
        if read:
            streams.append((key, read))
    return streams


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    netloc = user + host + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
