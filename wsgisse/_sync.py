"""Every lock and every wake-up in wsgisse: threads, greenlets, and both at once.

wsgisse must let a native OS thread (gevent's thread pool, a library's worker) publish
into a channel whose subscribers are greenlets, let greenlets publish to threads, and
never freeze a gevent hub. Three rules make that hold:

* Shared state is guarded by a *native* lock (the original ``_thread`` lock even after
  ``gevent.monkey.patch_all()``), held only for list and dict operations, never across a
  wait or a socket write, so a greenlet holding it never switches away.
* A party that waits does so with the primitive of where it runs: a greenlet parks on a
  gevent event of its own hub, a thread blocks on a native lock. Blocking a hub's thread
  on a native primitive would freeze every greenlet on it, so that is never done.
* A wake-up crosses threads only through ``loop.run_callback_threadsafe`` of the
  waiter's hub, batched so that one publish costs one cross-thread signal per hub.

gevent is imported only when the process already uses it: ``import wsgisse`` never
imports gevent.
"""

from __future__ import annotations

import _thread
import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from ._errors import UnsafeConcurrencyError

__all__ = [
    "Handoff",
    "HandoffClosed",
    "Latch",
    "Waiter",
    "call_on_hubs",
    "cooperative_sleep",
    "current_hub",
    "make_waiter",
    "native_lock",
    "native_thread_id",
    "spawn_native_thread",
    "spawn_worker",
    "unpatched",
    "wait_for",
    "wake_all",
]

T = TypeVar("T")


def unpatched(module: str, name: str) -> Any:
    """The unpatched ``module.name``, whether or not gevent has patched it.

    ``None`` when the module has no such name (``select.epoll`` off Linux).
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            return monkey.get_original(module, name)
        except AttributeError:
            return None
    return getattr(sys.modules[module], name, None)


def native_lock() -> _thread.LockType:
    """A real OS lock, even in a process that gevent has monkey-patched.

    Only for critical sections that never block or switch: then it is safe for threads
    and greenlets alike, and unlike a gevent lock it is safe across threads.
    """
    allocate: Callable[[], _thread.LockType] = unpatched("_thread", "allocate_lock")
    return allocate()


def native_thread_id() -> int:
    """The OS thread's identity (``threading.get_ident`` is a greenlet's when patched)."""
    get_ident: Callable[[], int] = unpatched("_thread", "get_ident")
    return get_ident()


def _threading_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def current_hub() -> Any:
    """The gevent hub of the calling OS thread, or ``None`` when it has none.

    In a monkey-patched process every thread of gevent's is a hub thread, even before
    its hub exists: there the hub is made, so that nobody ever blocks it natively.
    """
    hub_local = sys.modules.get("gevent._hub_local")
    if hub_local is None:
        return None
    hub = hub_local.get_hub_if_exists()
    if hub is None and _threading_patched() and _is_gevent_thread():
        import gevent

        hub = gevent.get_hub()
    return hub


def cooperative_sleep() -> Callable[[float], None]:
    """``sleep`` for the caller: gevent's on a thread that runs a hub, else the native one.

    Native even where gevent has patched ``time.sleep``: the patched one would make a
    hub in a native thread, whose greenlet switches can then race the interpreter's
    exit (a worker that exits while ``shutdown`` waits in such a thread crashed so).
    """
    hub_local = sys.modules.get("gevent._hub_local")
    if hub_local is not None and hub_local.get_hub_if_exists() is not None:
        import gevent

        return gevent.sleep  # type: ignore[no-any-return]
    native: Callable[[float], None] = unpatched("time", "sleep")
    return native


def _is_gevent_thread() -> bool:
    """Whether this OS thread is the main one or a greenlet-running one (not a pool's)."""
    main_ident: int | None = getattr(sys.modules.get("gevent.hub"), "MAIN_THREAD_IDENT", None)
    return main_ident is not None and native_thread_id() == main_ident


class Waiter(Protocol):
    """Something one party blocks on until another wakes it (spurious wakes allowed)."""

    #: The OS thread whose hub must run :meth:`wake`, or ``None`` if any thread may.
    thread_id: int | None

    def wait(self, timeout: float | None) -> None:
        """Block until woken or until ``timeout`` seconds pass."""

    def wake(self) -> None:
        """Wake the party blocked in :meth:`wait` (or make its next wait return)."""


class _ThreadWaiter:
    """A waiter for a native thread: a native lock used as a one-slot semaphore."""

    __slots__ = ("_lock", "thread_id")

    def __init__(self) -> None:
        self.thread_id: int | None = None
        self._lock = native_lock()
        self._lock.acquire()

    def wait(self, timeout: float | None) -> None:
        if timeout is None:
            self._lock.acquire()
        else:
            self._lock.acquire(True, max(timeout, 0.0))

    def wake(self) -> None:
        # Releasing an unlocked lock raises: the waiter was already woken and has not
        # waited again, and one pending wake is enough.
        with contextlib.suppress(RuntimeError):
            self._lock.release()


class _GreenletWaiter:
    """A waiter for a greenlet: a gevent event of the hub the greenlet runs on."""

    __slots__ = ("_event", "hub", "thread_id")

    def __init__(self, hub: Any) -> None:
        from gevent.event import Event

        self.hub = hub
        self.thread_id: int | None = hub.thread_ident
        self._event = Event()

    def wait(self, timeout: float | None) -> None:
        self._event.wait(timeout)
        # No switch can happen between the wait returning and this clear (both run on the
        # hub's thread without yielding), so a wake that arrives later is not lost: it
        # sets the event again and the next wait returns at once.
        self._event.clear()

    def wake(self) -> None:
        self._event.set()


def make_waiter() -> Waiter:
    """A waiter for the calling context: a greenlet's if this thread runs a gevent hub.

    Raises:
        UnsafeConcurrencyError: called from inside the gevent hub itself, which cannot
            wait for anything without freezing every greenlet it runs.
    """
    hub = current_hub()
    if hub is None:
        return _ThreadWaiter()
    from gevent import getcurrent

    if getcurrent() is hub:
        raise UnsafeConcurrencyError(
            "cannot wait for events inside the gevent hub (a hub callback or a loop "
            "watcher): do it in a greenlet, for example with gevent.spawn()"
        )
    return _GreenletWaiter(hub)


def _wake_each(waiters: list[Waiter]) -> None:
    for waiter in waiters:
        waiter.wake()


def call_on_hubs(batches: dict[Any, list[T]], callback: Callable[[list[T]], object]) -> None:
    """Run ``callback(batch)`` on the thread of each batch's hub: one signal per hub.

    A hub whose thread has ended refuses callbacks, and has nobody left to serve: its
    batch is dropped, so that a publish never fails because a thread of the process ended.
    """
    for hub, batch in batches.items():
        with contextlib.suppress(Exception):
            hub.loop.run_callback_threadsafe(callback, batch)


def wake_all(waiters: Iterable[Waiter]) -> None:
    """Wake every waiter, from any thread, crossing to each hub's thread at most once."""
    me = native_thread_id()
    remote: dict[Any, list[Waiter]] = {}
    for waiter in waiters:
        if waiter.thread_id is None or waiter.thread_id == me:
            waiter.wake()
        else:
            remote.setdefault(waiter.hub, []).append(waiter)  # type: ignore[attr-defined]
    if remote:
        call_on_hubs(remote, _wake_each)


def wait_for(
    poll: Callable[[bool], T | None],
    waiter: Waiter,
    block: bool = True,
    timeout: float | None = None,
) -> T:
    """The one wait loop of wsgisse: call ``poll`` until it has a result.

    ``poll(may_wait)`` looks, under its owner's lock, for what the caller waits for, and
    returns it, or ``None``. When it finds nothing and ``may_wait`` is true it must, under
    that same lock, register ``waiter`` to be woken: a wake-up that comes between its look
    and the wait then makes the wait return at once, so none is lost. When ``may_wait`` is
    false the caller will not wait, and ``poll`` must leave no registration behind. It
    raises to end the wait for good (the subscription ended, the producer finished).
    Spurious wakes are harmless: ``poll`` looks again.

    Raises:
        queue.Empty: nothing within ``timeout`` seconds (at once when not ``block``), as
            ``queue.Queue.get`` does.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    remaining = timeout
    while True:
        may_wait = block and (remaining is None or remaining > 0)
        result = poll(may_wait)
        if result is not None:
            return result
        if not may_wait:
            raise queue.Empty
        waiter.wait(remaining)
        if deadline is not None:
            remaining = deadline - time.monotonic()


class Latch:
    """A gate that opens once: :meth:`wait` blocks any thread or greenlet until :meth:`open`."""

    __slots__ = ("_lock", "_open", "_waiters")

    def __init__(self) -> None:
        self._lock = native_lock()
        self._open = False
        self._waiters: list[Waiter] = []

    def open(self) -> None:
        """Let every waiting party through, and all that come later."""
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        wake_all(waiters)

    def wait(self) -> None:
        """Block until :meth:`open` has been called (at once if it has)."""
        if self._open:
            return
        waiter = make_waiter()

        def poll(may_wait: bool) -> bool | None:
            with self._lock:
                if self._open:
                    return True
                if may_wait:
                    self._waiters.append(waiter)
                return None

        wait_for(poll, waiter)


def spawn_worker(target: Callable[[], None], name: str) -> Callable[[], None]:
    """Run ``target`` beside the caller and return a function that interrupts it.

    In a gevent-patched process the worker is a greenlet, and interrupting it raises
    ``GreenletExit`` wherever it waits. Anywhere else it is a native daemon thread, which
    may block in any call without freezing a hub (with gevent but without patching,
    ``threading`` still makes real threads); a thread cannot be interrupted, so the
    returned function does nothing and ``target`` must notice on its own that it should
    stop.
    """
    if current_hub() is not None and _threading_patched():
        import gevent

        worker = gevent.spawn(target)
        worker.name = name

        def interrupt() -> None:
            worker.kill(block=False)

        return interrupt
    spawn_native_thread(target, name)
    return _no_interrupt


def spawn_on_hub(target: Callable[[], None]) -> None:
    """Run ``target`` in a new bare greenlet of the calling thread's hub, soon.

    A bare greenlet (gevent's ``spawn_raw``): no ``Greenlet`` object, no link, no name,
    for work that catches its own errors and is started often (a released stream's pump).
    """
    from gevent import spawn_raw

    spawn_raw(target)


def hub_timer(hub: Any, after: float, callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` on ``hub``'s thread after ``after`` seconds; return the cancel.

    Must be called on ``hub``'s thread. The cancel is idempotent.
    """
    timer = hub.loop.timer(after)
    timer.start(callback)

    def cancel() -> None:
        timer.stop()
        timer.close()

    return cancel


def spawn_native_thread(target: Callable[[], object], name: str) -> None:
    """Run ``target`` in a new native daemon thread, even in a gevent-patched process."""
    if not _threading_patched():
        threading.Thread(target=target, name=name, daemon=True).start()
        return
    start_new_thread: Callable[..., int] = unpatched("_thread", "start_new_thread")
    start_new_thread(target, ())


def _no_interrupt() -> None:
    pass


class HandoffClosed(Exception):  # noqa: N818 - a signal to the producer, never seen by users
    """The consumer of a :class:`Handoff` has gone: the producer must stop."""


class Handoff:
    """Byte chunks handed from one producer to one consumer, in any two contexts.

    The producer (a worker running a user's generator) blocks in :meth:`put` while the
    consumer has more than ``limit`` bytes unread, so a fast generator is paced by the
    client's socket; the consumer takes everything pending in one :meth:`get`, so a
    fast generator still costs one write per batch, not one per event.
    """

    __slots__ = (
        "_chunks",
        "_consumer",
        "_consumer_waiter",
        "_error",
        "_finished",
        "_gone",
        "_limit",
        "_lock",
        "_pending",
        "_producer",
        "_producer_waits",
    )

    def __init__(self, limit: int = 64 * 1024) -> None:
        self._lock = native_lock()
        self._limit = limit
        self._chunks: list[bytes] = []
        self._pending = 0
        self._finished = False
        self._error: BaseException | None = None
        self._gone = False
        # The consumer's waiter while it waits (None otherwise), and both parties' own
        # waiters, made once each: a producer or consumer stays in one context.
        self._consumer: Waiter | None = None
        self._consumer_waiter: Waiter | None = None
        self._producer: Waiter | None = None
        # Whether the producer waits for room: only then does a get() wake it.
        self._producer_waits = False

    def put(self, chunk: bytes) -> None:
        """Hand over ``chunk``; blocks while the consumer is ``limit`` bytes behind.

        Raises:
            HandoffClosed: the consumer has closed the hand-off.
        """
        if self._producer is None:
            self._producer = make_waiter()
        producer = self._producer

        def poll(may_wait: bool) -> list[Waiter] | None:
            with self._lock:
                if self._gone:
                    raise HandoffClosed
                if self._pending >= self._limit:
                    self._producer_waits = may_wait  # get() wakes it once it has taken
                    return None
                self._chunks.append(chunk)
                self._pending += len(chunk)
                consumer, self._consumer = self._consumer, None
                return [] if consumer is None else [consumer]

        consumers = wait_for(poll, producer)
        if consumers:
            wake_all(consumers)

    def finish(self, error: BaseException | None = None) -> None:
        """The producer is done (with ``error`` when it failed)."""
        with self._lock:
            self._finished = True
            self._error = error
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            wake_all([consumer])

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """Take every chunk handed over so far, joined.

        Raises:
            queue.Empty: nothing within ``timeout`` (at once when not ``block``).
            EOFError: the producer finished and everything was taken; chained to the
                producer's exception when it failed.
        """
        if self._consumer_waiter is None:
            self._consumer_waiter = make_waiter()
        consumer = self._consumer_waiter

        producer: list[Waiter] = []

        def poll(may_wait: bool) -> list[bytes] | None:
            with self._lock:
                if self._chunks:
                    chunks, self._chunks, self._pending = self._chunks, [], 0
                    if self._producer_waits and self._producer is not None:
                        self._producer_waits = False
                        producer.append(self._producer)
                    return chunks
                if self._finished:
                    raise EOFError("the event source has finished") from self._error
                self._consumer = consumer if may_wait else None
                return None

        chunks = wait_for(poll, consumer, block, timeout)
        if producer:
            wake_all(producer)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def abort(self) -> None:
        """End the hand-off from any thread: the consumer gets what is pending, then EOF.

        The producer's next :meth:`put` raises HandoffClosed.
        """
        with self._lock:
            self._gone = True
            self._finished = True
            waiters = [w for w in (self._consumer, self._producer) if w is not None]
            self._consumer = None
        wake_all(waiters)

    def close(self) -> None:
        """The consumer is gone: a producer blocked in :meth:`put` raises HandoffClosed."""
        with self._lock:
            self._gone = True
            producer = self._producer
        if producer is not None:
            wake_all([producer])
