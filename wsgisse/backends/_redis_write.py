"""Writing events to Redis: one XADD (with its trimming), retried within bounds.

Every write of the backend (``publish``, ``publish_once``) goes through
:func:`attempt_write`, which turns redis-py's errors into wsgisse's: a connection error
or timeout (worth a retry, and ambiguous after a timeout: Redis may have stored it), a
refused id, or a refusal of another kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AskError, TryAgainError
from redis.retry import Retry

from .._errors import BackendUnavailableError, InvalidEventError
from ._redis_once import read_reply

if TYPE_CHECKING:
    from redis.client import Pipeline
    from redis.typing import EncodableT, FieldT

__all__ = ["attempt_write", "no_retry", "oldest_kept", "replicated", "xadd"]

# How Redis words its refusal of an XADD id (not above the last id, 0-0, or no id).
_REFUSED_ID = ("The ID specified in XADD", "Invalid stream ID")


def no_retry() -> Retry:
    """No retries by redis-py itself.

    The backend bounds retries itself (publish_retries, the reader's backoff): redis-py
    6+ otherwise retries every command three times on its own.
    """
    return Retry(NoBackoff(), 0)


def oldest_kept(max_age: float | None) -> str | None:
    """The ``MINID`` that drops entries older than ``max_age`` seconds (by this clock)."""
    if max_age is None:
        return None
    return f"{max(0, time.time_ns() // 1_000_000 - int(max_age * 1000))}-0"


def xadd(
    client: redis.Redis,
    key: str,
    fields: dict[FieldT, EncodableT],
    xadd_id: str,
    maxlen: int | None,
    max_age: float | None,
    replicas: tuple[int, int] | None = None,
) -> Any:
    """``XADD key MAXLEN ~ maxlen xadd_id fields``, then ``XTRIM MINID`` for ``max_age``.

    ``replicas``: ``(count, timeout ms)`` to wait for, see :func:`replicated`.
    """
    if max_age is None and replicas is None:
        return client.xadd(key, fields, id=xadd_id, maxlen=maxlen)
    # XADD takes one trimming strategy, so MINID goes in a second command of the same
    # round trip. Exact, unlike MAXLEN ~: approximate trimming only drops whole nodes of
    # ~100 entries, so a slow channel would keep its old events forever.
    pipe = client.pipeline(transaction=False)
    pipe.xadd(key, fields, id=xadd_id, maxlen=maxlen)
    if max_age is not None:
        pipe.xtrim(key, minid=oldest_kept(max_age), approximate=False)
    return replicated(pipe, key, replicas)


def replicated(pipe: Pipeline, key: str, replicas: tuple[int, int] | None) -> Any:
    """Run ``pipe`` (a write first), with ``WAIT count timeout`` last; the write's reply.

    ``WAIT`` must follow the write on the same connection, hence one pipeline.

    Raises:
        BackendUnavailableError: fewer replicas than asked acknowledged the write in
            time: the primary stored it, and a failover now may lose it.
    """
    if replicas is not None:
        pipe.wait(*replicas)
    results = pipe.execute()
    if replicas is not None and int(results[-1]) < replicas[0]:
        raise BackendUnavailableError(
            f"the event for {key!r} was stored by the primary but acknowledged by "
            f"{results[-1]} of {replicas[0]} replicas within {replicas[1]} ms: a failover "
            "now may lose it (and it may have reached subscribers)"
        )
    return results[0]


def attempt_write(
    call: Callable[[], Any],
    key: str,
    event_id: str | None,
    retries: int,
    delay: float,
    on_moved: Callable[[], None] | None = None,
) -> str:
    """Run one write, tried ``retries`` more times on connection errors; its stream id.

    A cluster's ``MOVED`` or ``ASK`` (the slot is elsewhere now: nothing was stored) is
    retried too, after ``on_moved`` has looked up where the slot went.

    Raises:
        InvalidEventError: Redis refused ``event_id``.
        BackendUnavailableError: Redis could not be reached, did not answer in time
            (the outcome is then unknown), or refused the write.
    """
    failure: redis.RedisError | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(delay)
        try:
            added = call()
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError) as exc:
            failure = exc  # Unreachable, restarting, stuck or failing over: worth a retry.
            continue
        except (AskError, TryAgainError) as exc:
            failure = exc  # The slot moves or moved (MOVED is an AskError): not stored.
            if on_moved is not None:
                on_moved()
            continue
        except redis.ResponseError as exc:
            if event_id is not None and any(m in str(exc) for m in _REFUSED_ID):
                raise InvalidEventError("id", event_id, f"Redis refused it: {exc}") from exc
            raise BackendUnavailableError(f"Redis refused the event for {key!r}: {exc}") from exc
        except redis.RedisError as exc:
            raise BackendUnavailableError(f"could not publish to {key!r}: {exc}") from exc
        if isinstance(added, (list, tuple)):  # publish_once's script.
            return read_reply(added)[0]
        return added.decode() if isinstance(added, bytes) else str(added)
    attempts = retries + 1
    raise BackendUnavailableError(
        f"could not publish to {key!r} ({attempts} attempt{'s' * (attempts > 1)}): "
        f"Redis is unreachable or did not answer in time: {failure}"
    ) from failure
