"""URLs of the stream: ``path("events/", include("wsgisse.integrations.django.urls"))``.

The channels come from the ``include``'s keywords (``{"channels": ["news"]}``), from a
``<channel>`` in the including path, or else from ``?channel=``; see
:class:`~wsgisse.integrations.django.ChannelManager`. ``reverse("wsgisse:events")``
names the stream.
"""

from __future__ import annotations

from django.urls import path

from .views import events

app_name = "wsgisse"

urlpatterns = [path("", events, name="events")]
