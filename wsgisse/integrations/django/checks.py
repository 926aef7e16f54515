"""System checks: ``manage.py check`` reports a wrong ``WSGISSE`` setting before a request."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .conf import collect, load, problems

__all__ = ["check_settings"]

_AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check ``settings.WSGISSE``, its channel manager, and the middleware it relies on."""
    del app_configs, kwargs
    raw, found = collect(settings)
    found += problems(raw)
    messages: list[checks.CheckMessage] = [
        (checks.Error if problem.error else checks.Warning)(
            problem.message, hint=problem.hint, id=problem.id
        )
        for problem in found
    ]
    if not found:
        path = load(raw).channel_manager
        try:
            manager = import_string(path)
        except ImportError as exc:
            messages.append(
                checks.Error(
                    f"WSGISSE['CHANNEL_MANAGER'] {path!r} cannot be imported: {exc}",
                    id="wsgisse.E007",
                )
            )
        else:
            if not callable(getattr(manager, "can_read", None)):
                messages.append(
                    checks.Error(
                        f"WSGISSE['CHANNEL_MANAGER'] {path!r} has no can_read(user, channel)",
                        hint="subclass wsgisse.integrations.django.ChannelManager",
                        id="wsgisse.E007",
                    )
                )
    if _AUTH_MIDDLEWARE not in getattr(settings, "MIDDLEWARE", []):
        messages.append(
            checks.Warning(
                f"{_AUTH_MIDDLEWARE} is not in MIDDLEWARE: every stream is anonymous "
                "(can_read gets None, and audiences reach nobody)",
                id="wsgisse.W001",
            )
        )
    return messages
