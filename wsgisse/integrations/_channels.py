"""The channels a framework integration serves and publishes to: one, several, or by rule.

Shared by the Flask extension and the Bottle plugin, so that both accept the same
``channels=`` and publish the same way. Imports no framework.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Union

from wsgisse import Channel, ServerSentEvent, UnknownChannelError
from wsgisse._sync import native_lock

if TYPE_CHECKING:
    from wsgisse import Backend
    from wsgisse._endpoint import ChannelSource

__all__ = ["ChannelRule", "ChannelSet", "ChannelsSpec", "redis_backend"]

#: A rule for dynamic channels (rooms): called with a name a client asked for or a
#: publish named, it returns a :class:`~wsgisse.Channel` to serve, ``True`` to have the
#: integration make (once, then keep) a channel of that name with its own settings
#: (history, the Redis backend), or ``None``/``False`` for "no such channel" (a ``404``
#: to a client, :class:`~wsgisse.UnknownChannelError` to a publish).
ChannelRule = Callable[[str], Union[Channel, bool, None]]  # noqa: UP007 - runtime alias

#: What ``channels=`` accepts: ``None`` (one channel, named after the app), a
#: :class:`~wsgisse.Channel`, channel names (an iterable of ``str``: one channel made
#: for each), a mapping of names to channels, or a :data:`ChannelRule`.
ChannelsSpec = Union[Channel, Iterable[str], Mapping[str, Channel], ChannelRule, None]  # noqa: UP007


def redis_backend(url: str | None) -> Backend | None:
    """A :class:`~wsgisse.backends.redis.RedisBackend` for ``url`` (``None``: none).

    ``wsgisse.backends.redis`` (and so redis-py) is imported only when a URL is given.

    Raises:
        ImportError: redis-py is not installed (the message names ``wsgisse[redis]``).
    """
    if url is None:
        return None
    from wsgisse.backends.redis import RedisBackend  # noqa: PLC0415 - only when configured

    return RedisBackend(url)


class ChannelSet:
    """The channels of one app (or of one publishing process), by name.

    Args:
        spec: see :data:`ChannelsSpec`.
        default_name: the name of the one channel made when ``spec`` is ``None``.
        history: the ``history`` of every channel made here (see :class:`~wsgisse.Channel`).
        backend: the backend of every channel made here (``None``: memory). Channels
            given ready-made keep their own.

    Raises:
        TypeError: ``spec`` is a ``str`` (give a list of names) or a mapping holds
            something that is not a channel.
        ValueError: ``history`` is negative, or a mapping's key is not its channel's name.
    """

    def __init__(
        self,
        spec: ChannelsSpec,
        *,
        default_name: str = "default",
        history: int = 1000,
        backend: Backend | None = None,
    ) -> None:
        self._history = history
        self._backend = backend
        self._lock = native_lock()
        self._single: Channel | None = None
        self._fixed: dict[str, Channel] | None = None
        self._rule: ChannelRule | None = None
        self._made: dict[str, Channel] = {}
        if spec is None:
            self._single = self._make(default_name)
        elif isinstance(spec, Channel):
            self._single = spec
        elif isinstance(spec, Mapping):
            self._fixed = {}
            for name, channel in spec.items():
                if not isinstance(channel, Channel):
                    raise TypeError(
                        f"channel {name!r} is a {type(channel).__name__}, not a Channel"
                    )
                if channel.name != name:
                    raise ValueError(f"the channel under {name!r} is named {channel.name!r}")
                self._fixed[name] = channel
        elif callable(spec):
            self._rule = spec
        elif isinstance(spec, str):
            raise TypeError(f"channels={spec!r} is one string: give a list of names, [{spec!r}]")
        else:
            self._fixed = {name: self._make(name) for name in spec}

    def _make(self, name: str) -> Channel:
        return Channel(name, history=self._history, backend=self._backend)

    @property
    def source(self) -> ChannelSource:
        """What :class:`~wsgisse.SSEApp` serves: one channel, a mapping, or a lookup."""
        if self._single is not None:
            return self._single
        if self._fixed is not None:
            return self._fixed
        return self.lookup

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the channels served (for a rule: those made or met so far)."""
        if self._single is not None:
            return (self._single.name,)
        if self._fixed is not None:
            return tuple(self._fixed)
        with self._lock:
            return tuple(self._made)

    @property
    def backend(self) -> Backend | None:
        """The backend of the channels made here (``None``: memory)."""
        return self._backend

    def lookup(self, name: str) -> Channel | None:
        """The channel called ``name``, or ``None`` if none is served by that name."""
        if self._single is not None:
            return self._single if name == self._single.name else None
        if self._fixed is not None:
            return self._fixed.get(name)
        assert self._rule is not None  # noqa: S101 - one of the three is always set
        found = self._rule(name)
        if isinstance(found, Channel):
            return found
        if found is not True:
            return None
        with self._lock:
            channel = self._made.get(name)
            if channel is None:
                channel = self._made[name] = self._make(name)
        return channel

    def get(self, name: str | None = None) -> Channel:
        """The channel called ``name``; ``None`` means the only one.

        Raises:
            UnknownChannelError: no channel of that name, or ``None`` while several (or a
                rule) are served.
        """
        if name is None:
            if self._single is not None:
                return self._single
            if self._fixed is not None and len(self._fixed) == 1:
                return next(iter(self._fixed.values()))
            raise UnknownChannelError(None, self.names if self._fixed is not None else ())
        channel = self.lookup(name)
        if channel is None:
            raise UnknownChannelError(name, self.names if self._rule is None else ())
        return channel

    def publish(
        self,
        data: object,
        *,
        channel: str | None = None,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        audience: Iterable[str] | None = None,
    ) -> ServerSentEvent:
        """Publish on the channel called ``channel`` (``None``: the only one).

        See :meth:`wsgisse.Channel.publish` for ``audience`` (the users who may receive
        it, as an ``authorize`` hook names them) and the other fields.

        Returns:
            The event as sent, with its id.

        Raises:
            UnknownChannelError: see :meth:`get`.
            InvalidEventError: a field the format cannot carry.
            ChannelClosedError: the channel was closed.
            BackendUnavailableError: the backend (Redis) could not take the event.
        """
        return self.get(channel).publish(data, event=event, id=id, retry=retry, audience=audience)

    def __repr__(self) -> str:
        return f"<ChannelSet {', '.join(self.names) or 'by rule'}>"
