"""The channel manager: which channels a request reads, and who may read them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpRequest

__all__ = ["ChannelManager"]


class ChannelManager:
    """Decides, for the stream view, the channels of a request and who may read each.

    Subclass it and name the subclass in ``WSGISSE["CHANNEL_MANAGER"]`` (a dotted path);
    one instance serves the whole process, so keep no per-request state on it. It plays
    the part of django-eventstream's ``DefaultChannelManager``.
    """

    def channels_for_request(
        self, request: HttpRequest, view_kwargs: Mapping[str, Any]
    ) -> Sequence[str] | None:
        """The channel names a stream request reads, or ``None`` to take ``?channel=``.

        By default: the URL's ``channels`` keyword (a list, from the third argument of
        ``path()``) or ``channel`` keyword (one name, e.g. from ``"events/<channel>/"``);
        with neither, the client names them with ``?channel=a&channel=b``.
        """
        del request
        channels = view_kwargs.get("channels")
        if channels is not None:
            return [channels] if isinstance(channels, str) else list(channels)
        channel = view_kwargs.get("channel")
        if channel is not None:
            return [str(channel)]
        return None

    def can_read(self, user: Any, channel: str) -> bool:
        """Whether ``user`` may read ``channel``; by default everybody may.

        ``user`` is ``request.user``: a user, or an ``AnonymousUser`` for a visitor who
        is not logged in (``None`` without ``AuthenticationMiddleware``). It runs while
        the stream request is answered, before its first byte, and may query the
        database: the stream gives its connection back before it starts streaming.
        A refusal answers ``401`` to an anonymous visitor and ``403`` to a user; both
        stop an ``EventSource`` for good.
        """
        del user, channel
        return True
