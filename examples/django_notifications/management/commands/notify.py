"""``manage.py notify TEXT [--to USER]``: publish from outside any request."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from wsgisse.integrations.django import send_event


class Command(BaseCommand):
    """Send a notification, as the ``notify`` view does, from a shell or a cron job.

    It reaches the servers' streams through the Redis backend (``$EXAMPLE_REDIS_URL``);
    with the memory backend it would reach only this command's own process.
    """

    help = "Send a notification to everyone, or to one user."

    def add_arguments(self, parser: CommandParser) -> None:
        """``TEXT`` and ``--to``."""
        parser.add_argument("text")
        parser.add_argument("--to", default="everyone")

    def handle(self, *args: Any, **options: Any) -> None:
        """Publish, and print the event's id."""
        to = options["to"]
        audience = None
        if to != "everyone":
            target = get_user_model().objects.filter(username=to).first()
            if target is None:
                raise CommandError(f"no user {to!r}")
            audience = [target]
        data = {"text": options["text"], "from": "manage.py", "to": to, "at": timezone.now()}
        sent = send_event("notifications", data, event="notification", audience=audience)
        self.stdout.write(str(sent.id))
