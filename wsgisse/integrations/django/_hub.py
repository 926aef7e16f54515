"""What the Django integration holds for one process: backend, channels, stream endpoint.

One :class:`Hub` per process, owned by the app's ``AppConfig`` (so by Django's app
registry, not by a module global) and made at its first use: a process that never
streams or publishes (``manage.py migrate``) opens nothing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from wsgisse import CORS, Channel, SSEApp

from ._manager import ChannelManager
from .conf import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from wsgisse import Backend
    from wsgisse._endpoint import Decision

__all__ = ["REQUEST_KEY", "Hub", "user_key"]

#: Where the stream view puts the ``HttpRequest`` in the environ for the endpoint's
#: ``authorize`` hook (removed again before the view returns).
REQUEST_KEY = "wsgisse.django.request"


def user_key(user: Any) -> str:
    """The name a user's streams are tagged with: the primary key, as a string.

    Accepts a user object or a primary key, so that ``audience=[request.user]`` and
    ``audience=[42]`` mean the same.
    """
    pk = getattr(user, "pk", user)
    if pk is None:
        raise ValueError("an anonymous or unsaved user has no streams to target")
    return str(pk)


class Hub:
    """The process' channels (made on demand, by name) and the :class:`~wsgisse.SSEApp`.

    Raises:
        ImportError: ``CHANNEL_MANAGER`` or the redis package cannot be imported.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        manager_class = import_string(settings.channel_manager)
        self.manager: ChannelManager = manager_class()
        self.backend: Backend | None = None
        if settings.backend == "redis":
            from wsgisse.backends.redis import RedisBackend  # noqa: PLC0415 - optional

            assert settings.redis_url is not None  # noqa: S101 - conf.load checked it
            self.backend = RedisBackend(settings.redis_url)
        self._lock = threading.Lock()
        self._channels: dict[str, Channel] = {}
        self.endpoint = SSEApp(
            self._resolve,
            heartbeat=settings.heartbeat,
            retry=settings.retry,
            max_lifetime=settings.max_lifetime,
            authorize=self._authorize,
            cors=None if settings.cors is None else CORS(**settings.cors),
            max_connections=settings.max_connections,
            max_connections_per_client=settings.max_connections_per_client,
            write_timeout=settings.write_timeout,
        )

    def channel(self, name: str) -> Channel:
        """The channel ``name`` of this process, made at first use.

        Raises:
            LookupError: ``WSGISSE["CHANNELS"]`` lists the names served, and not this one.
        """
        allowed = self.settings.channels
        if allowed is not None and name not in allowed:
            raise LookupError(f"no channel {name!r}: WSGISSE['CHANNELS'] lists {sorted(allowed)}")
        with self._lock:
            channel = self._channels.get(name)
            if channel is None:
                channel = Channel(name, history=self.settings.history, backend=self.backend)
                self._channels[name] = channel
            return channel

    def _resolve(self, name: str) -> Channel | None:
        try:
            return self.channel(name)
        except LookupError:
            return None

    def _authorize(self, environ: WSGIEnvironment, channels: tuple[str, ...]) -> Decision:
        """The endpoint's door: ``request.user`` and the channel manager's ``can_read``."""
        request = environ.get(REQUEST_KEY)
        if request is None:  # the endpoint was mounted outside the stream view
            return False
        user = getattr(request, "user", None)
        authenticated = bool(getattr(user, "is_authenticated", False))
        for name in channels:
            if not self.manager.can_read(user, name):
                return False if authenticated else None
        return user_key(user) if authenticated else True
