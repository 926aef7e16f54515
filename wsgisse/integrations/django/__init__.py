"""Server-sent events for Django, served by its WSGI stack (gunicorn -k gevent, runserver).

::

    # settings.py
    INSTALLED_APPS = [..., "wsgisse.integrations.django"]
    WSGISSE = {"BACKEND": "redis", "REDIS_URL": "redis://127.0.0.1:6379/0"}

    # urls.py
    path("events/", include("wsgisse.integrations.django.urls"), {"channels": ["news"]}),

    # anywhere: a view, a signal, a management command, a task worker
    from wsgisse.integrations.django import send_event
    send_event("news", {"title": "hello"}, event="headline")
    send_event("news", {"unread": 3}, audience=[request.user])   # only that user's streams

The stream request passes through ``MIDDLEWARE`` like any other (``ALLOWED_HOSTS``,
``SecurityMiddleware``, sessions, CORS packages), and the channel manager's
``can_read(user, channel)`` sees ``request.user``. An open stream holds no database
connection, and ``GZipMiddleware`` leaves it alone (see :mod:`.views`). ``docs/django.rst``
has the settings, deployment, and a migration from django-eventstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.apps import apps as app_registry
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from ._hub import user_key
from ._manager import ChannelManager

if TYPE_CHECKING:
    from wsgisse import Channel, ServerSentEvent

    from ._hub import Hub

__all__ = [
    "ChannelManager",
    "get_channel",
    "get_hub",
    "revoke",
    "send_event",
    "send_event_on_commit",
]

#: The app label of ``wsgisse.integrations.django`` in ``INSTALLED_APPS``.
APP_LABEL = "wsgisse"


def get_hub() -> Hub:
    """The process' :class:`~._hub.Hub`: its channels, backend and stream endpoint.

    Raises:
        ImproperlyConfigured: the app is not in ``INSTALLED_APPS``, or ``WSGISSE`` is
            invalid.
    """
    from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415

    try:
        config = app_registry.get_app_config(APP_LABEL)
    except LookupError:
        raise ImproperlyConfigured(
            "add 'wsgisse.integrations.django' to INSTALLED_APPS to stream or publish"
        ) from None
    hub: Hub = config.hub()  # type: ignore[attr-defined]
    return hub


def get_channel(name: str) -> Channel:
    """The :class:`wsgisse.Channel` called ``name`` in this process (its ``stats``...).

    Raises:
        LookupError: ``WSGISSE["CHANNELS"]`` lists the channels served, not this one.
    """
    return get_hub().channel(name)


def _encode(data: object) -> object:
    # Text and bytes are sent as they are (as by wsgisse.Channel.publish); anything else
    # as JSON, through Django's encoder (datetimes, Decimals, UUIDs, lazy strings).
    if isinstance(data, (str, bytes)):
        return data
    return json.dumps(
        data, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def send_event(
    channel: str,
    data: object,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    audience: Iterable[Any] | None = None,
) -> ServerSentEvent:
    """Publish an event on ``channel``; no request needed.

    ``data`` is text, bytes, or anything :class:`~django.core.serializers.json.
    DjangoJSONEncoder` encodes. ``audience`` restricts the event to the streams of those
    users (user objects or primary keys), live and replayed alike. With the ``"redis"``
    backend it reaches every worker of every host, from any process (a management
    command, a task-queue worker); with ``"memory"`` only this process' streams.

    Returns:
        The event as sent, with its id.

    Raises:
        LookupError: ``channel`` is not among ``WSGISSE["CHANNELS"]``.
        InvalidEventError: a field the format cannot carry (see ``Channel.publish``).
        BackendUnavailableError: Redis could not take the event.
        TypeError: ``data`` cannot be encoded as JSON.
        ValueError: ``audience`` holds an anonymous or unsaved user (no primary key).
    """
    users = None if audience is None else [user_key(user) for user in audience]
    return get_channel(channel).publish(
        _encode(data), event=event, id=id, retry=retry, audience=users
    )


def send_event_on_commit(
    channel: str,
    data: object,
    *,
    event: str | None = None,
    audience: Iterable[Any] | None = None,
    using: str | None = None,
) -> None:
    """Publish like :func:`send_event` once the transaction commits; never if it rolls back.

    Outside a transaction it publishes at once (as ``transaction.on_commit`` does). The
    data is encoded now, so that an encoding error is raised here and a later change
    to the objects does not change the event; an error while publishing after the
    commit is raised from the commit, as for any ``on_commit`` callback.

    Raises:
        LookupError: ``channel`` is not among ``WSGISSE["CHANNELS"]``.
        TypeError: ``data`` cannot be encoded as JSON.
    """
    get_channel(channel)  # an unknown channel fails here, not after the commit
    encoded = _encode(data)
    users = None if audience is None else [user_key(user) for user in audience]

    def publish() -> None:
        send_event(channel, encoded, event=event, audience=users)

    transaction.on_commit(publish, using=using)


def revoke(user: Any, *, channel: str | None = None) -> int:
    """End ``user``'s open streams (of ``channel`` only, if given) at once.

    Each gets a ``wsgisse-end`` event with reason ``"revoked"`` and is closed; a page
    should close its ``EventSource`` on it. ``can_read`` must also refuse the user from
    now on (deactivate them, or change what it checks), or the browser reconnects. It
    ends the streams this process serves, through :meth:`wsgisse.SSEApp.revoke`, so it
    reaches as far as that does (see ``docs/django.rst``). Returns how many were ended.
    """
    return get_hub().endpoint.revoke(user=user_key(user), channel=channel)
