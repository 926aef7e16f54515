"""The app config: ``"wsgisse.integrations.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from django.apps import AppConfig

if TYPE_CHECKING:
    from ._hub import Hub

__all__ = ["WsgisseConfig"]


class WsgisseConfig(AppConfig):
    """wsgisse's app: it registers the system checks and owns the process' :class:`Hub`."""

    name = "wsgisse.integrations.django"
    label = "wsgisse"
    verbose_name = "Server-sent events (wsgisse)"

    def ready(self) -> None:
        """Register the system checks (``manage.py check``); nothing is opened yet."""
        from . import checks  # noqa: F401, PLC0415 - registers on import

        self._hub: Hub | None = None
        self._hub_lock = threading.Lock()

    def hub(self) -> Hub:
        """The process' hub, made from ``settings.WSGISSE`` at the first call.

        Raises:
            ImproperlyConfigured: the setting is invalid (``manage.py check`` says why).
        """
        hub = self._hub
        if hub is not None:
            return hub
        from django.conf import settings  # noqa: PLC0415
        from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415

        from ._hub import Hub  # noqa: PLC0415
        from .conf import collect, load  # noqa: PLC0415

        with self._hub_lock:  # two first requests at once make one hub
            if self._hub is None:
                raw, twice = collect(settings)
                if twice:
                    raise ImproperlyConfigured(f"{twice[0].message} ({twice[0].id})")
                self._hub = Hub(load(raw))
            return self._hub
