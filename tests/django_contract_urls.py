"""The URLconf of the Django leg of tests/test_integrations.py: the stream at ``/events``.

Each test serves a channel of its own (``CHANNEL["channels"]`` is set before each app is
made), since a Django process has one hub for all its channels.
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path

CHANNEL: dict[str, Any] = {"channels": ["contract-0"]}

urlpatterns = [path("events", include("wsgisse.integrations.django.urls"), CHANNEL)]
