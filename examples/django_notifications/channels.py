"""Who may read the example's stream: logged-in, active users only."""

from __future__ import annotations

from typing import Any

from wsgisse.integrations.django import ChannelManager


class Notifications(ChannelManager):
    """The ``notifications`` channel is for logged-in users; others get ``401``."""

    def can_read(self, user: Any, channel: str) -> bool:
        """A revoked user is deactivated, so Django logs them out: refused from then on."""
        return channel == "notifications" and bool(user is not None and user.is_authenticated)
