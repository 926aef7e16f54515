"""Run in a subprocess by test_django_checks.py: Django configured in a process of its own.

``python django_units.py checks WSGISSE_JSON`` prints the ids of ``manage.py check``'s
messages for that setting; ``python django_units.py on_commit`` publishes inside
transactions (SQLite in memory) and prints what a subscriber received when.
"""

from __future__ import annotations

import json
import queue
import sys
from decimal import Decimal
from typing import Any

import django
from django.conf import settings
from django.core import checks as django_checks
from django.db import transaction

from wsgisse.integrations.django import get_channel, send_event_on_commit


def configure(wsgisse: object, middleware: list[str] | None = None) -> None:
    """Django with the wsgisse app, SQLite in memory, and ``settings.WSGISSE``."""
    options: dict[str, Any] = {}
    if wsgisse is not None:
        options["WSGISSE"] = wsgisse
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "wsgisse.integrations.django",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        MIDDLEWARE=middleware
        if middleware is not None
        else [
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        **options,
    )
    django.setup()


def checks(raw: str) -> None:
    """Print the check ids, one a line (``-`` when there are none)."""
    setting = json.loads(raw)
    middleware = setting.pop("_MIDDLEWARE", None) if isinstance(setting, dict) else None
    configure(setting, middleware)
    found = django_checks.run_checks()
    print("\n".join(sorted(message.id or "" for message in found)) or "-")


def on_commit() -> None:
    """Publish in committed and rolled-back transactions; print what arrived at each step."""
    configure({"CHANNELS": ["news"]})
    subscription = get_channel("news").subscribe()

    def received() -> str:
        try:
            return subscription.get(block=False).decode()
        except queue.Empty:
            return ""

    received()  # the subscription's prelude, if any
    steps = {}
    with transaction.atomic():
        send_event_on_commit("news", {"price": Decimal("1.50")}, event="kept")
        steps["inside"] = received()
    steps["committed"] = received()
    try:
        with transaction.atomic():
            send_event_on_commit("news", "dropped", event="dropped")
            raise RuntimeError
    except RuntimeError:
        pass
    steps["rolled back"] = received()
    try:
        send_event_on_commit("elsewhere", "x")
    except LookupError as exc:
        steps["unknown channel"] = str(exc)
    print(json.dumps(steps))


if __name__ == "__main__":
    if sys.argv[1] == "checks":
        checks(sys.argv[2])
    else:
        on_commit()
