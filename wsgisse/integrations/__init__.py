"""Framework integrations: ``wsgisse.integrations.flask`` and ``wsgisse.integrations.bottle``.

Each is imported on its own; ``import wsgisse`` imports neither, nor their framework.
What both share is here, and imports no framework: :class:`ChannelSet` (the channels an
integration serves and publishes to) and what their ``channels=`` accepts.
"""

from __future__ import annotations

from ._channels import ChannelRule, ChannelSet, ChannelsSpec

__all__ = ["ChannelRule", "ChannelSet", "ChannelsSpec"]
