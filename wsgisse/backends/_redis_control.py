"""The control stream of the Redis backend: revocations that every process obeys.

A revocation is one ``XADD`` to the stream ``{prefix}@control`` (fields ``op=revoke`` and
``user`` and/or ``channel``). Every process' reader reads that stream in the same
``XREAD`` as its channels' streams, and handles a reply's control entries before its
channel entries. Redis runs commands one at a time, so an event XADDed after the
revocation's XADD returned is in the same reply as the revocation or in a later one: a
revoked stream is ended (its subscription's end marks the log's head) before that event
reaches its log, and never sends it. Pure, but for :func:`apply`, which ends streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import _lifecycle
from ._redis_replies import field, parse_id

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

__all__ = ["CONTROL_MAXLEN", "CONTROL_SUFFIX", "Revocation", "apply", "encode", "read"]

#: Put after the backend's prefix to make the control stream's key. A channel named
#: ``@control`` would share that key: the name is reserved (the backend refuses it).
CONTROL_SUFFIX = "@control"

#: The control stream keeps about this many entries (``MAXLEN ~``): a reader that was
#: away from Redis longer than it takes to add that many revocations misses the oldest.
CONTROL_MAXLEN = 1000

_REVOKE = b"revoke"


class Revocation(NamedTuple):
    """One revocation read from the control stream: who, on which channel, when."""

    id: str
    user: str | None
    channel: str | None


def encode(user: str | None, channel: str | None) -> dict[FieldT, EncodableT]:
    """The fields of a revocation's control entry.

    Raises:
        ValueError: neither ``user`` nor ``channel`` given.
    """
    if user is None and channel is None:
        raise ValueError("revoke needs a user, a channel, or both")
    fields: dict[FieldT, EncodableT] = {b"op": _REVOKE}
    if user is not None:
        fields[b"user"] = user.encode("utf-8")
    if channel is not None:
        fields[b"channel"] = channel.encode("utf-8")
    return fields


def read(raw: Any) -> list[Revocation]:
    """The revocations of the control stream's part of an XREAD / XRANGE reply.

    Entries of another ``op`` (a later version's) are left out; an entry naming neither
    user nor channel would match everything and is left out too.
    """
    found = []
    for entry_id, fields in raw or ():
        text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        if parse_id(text) is None or field(fields, b"op") != _REVOKE:
            continue
        user, channel = field(fields, b"user"), field(fields, b"channel")
        if user is None and channel is None:
            continue
        found.append(
            Revocation(
                text,
                None if user is None else user.decode("utf-8", "replace"),
                None if channel is None else channel.decode("utf-8", "replace"),
            )
        )
    return found


def apply(revocations: Iterable[Revocation], fed: Callable[[Any], bool]) -> int:
    """End this process' streams that the revocations match; return how many matched.

    A stream matches when its user is the revocation's (any user if none given) and one
    of its channels is fed by this backend (``fed``) and named as the revocation says
    (any, if it names none).
    """
    ended = 0
    for revocation in revocations:
        name = revocation.channel

        def matches(channel: Any, name: str | None = name) -> bool:
            return fed(channel) and (name is None or getattr(channel, "name", None) == name)

        ended += _lifecycle.revoke_streams(revocation.user, matches)
    return ended
