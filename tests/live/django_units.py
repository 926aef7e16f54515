"""Run in a subprocess by test_django_checks.py: Django configured in a process of its own.

``python django_units.py checks WSGISSE_JSON`` prints the ids of ``manage.py check``'s
messages for that setting; ``python django_units.py on_commit`` publishes inside
transactions (SQLite in memory) and prints what a subscriber received when;
``python django_units.py views`` asks the stream view through Django's test client
(this module is also the URLconf) and prints the answers.
"""

from __future__ import annotations

import json
import queue
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import django
from django.conf import settings
from django.core import checks as django_checks
from django.db import transaction

from wsgisse.integrations.django import get_channel, send_event_on_commit


def __getattr__(name: str) -> Any:
    """``urlpatterns``, made when Django's resolver first asks (settings are ready then)."""
    if name != "urlpatterns":
        raise AttributeError(name)
    return _urlpatterns()


def _urlpatterns() -> list[Any]:
    """The URLs of ``views``: fixed channels, a channel from the path, and ``?channel=``."""
    from django.urls import include, path  # noqa: PLC0415 - needs configured settings

    stream = "wsgisse.integrations.django.urls"
    return [
        path("fixed/", include(stream), {"channels": ["news"]}),
        path("rooms/<channel>/events/", include(stream)),
        path("any/", include(stream)),
    ]


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
        ROOT_URLCONF="django_units",
        ALLOWED_HOSTS=["testserver"],
        **options,
    )
    django.setup()


def checks(raw: str) -> None:
    """Print the ids of wsgisse's check messages, one a line (``-`` when there are none)."""
    setting = json.loads(raw)
    middleware = setting.pop("_MIDDLEWARE", None) if isinstance(setting, dict) else None
    configure(setting, middleware)
    found = django_checks.run_checks()
    # Only wsgisse's: the URLconf of `views` includes the stream three times (urls.W005).
    ids = [message.id or "" for message in found]
    ours = sorted(id for id in ids if id.startswith("wsgisse."))
    print("\n".join(ours) or "-")


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


def views() -> None:
    """Print, for each request, its status and the start of its body."""
    cors = {"origins": ["https://app.example"], "allow_credentials": True}
    configure({"CHANNELS": ["news", "sport"], "HEARTBEAT": 1, "CORS": cors})
    from django.test import Client  # noqa: PLC0415 - needs configured settings

    client = Client()
    answers: dict[str, Any] = {}
    requests: list[tuple[str, Callable[[], Any]]] = [
        ("fixed", lambda: client.get("/fixed/", HTTP_ACCEPT="text/event-stream")),
        ("fixed ignores ?channel", lambda: client.get("/fixed/?channel=sport")),
        ("path", lambda: client.get("/rooms/sport/events/")),
        ("path, unknown", lambda: client.get("/rooms/weather/events/")),
        ("query", lambda: client.get("/any/?channel=news&channel=sport")),
        ("query, none", lambda: client.get("/any/")),
        ("post", lambda: client.post("/fixed/")),
        ("head", lambda: client.head("/fixed/")),
        ("bad id", lambda: client.get("/fixed/", HTTP_LAST_EVENT_ID="a\u0000b")),
        ("cors", lambda: client.get("/fixed/", HTTP_ORIGIN="https://app.example")),
        ("cors, elsewhere", lambda: client.get("/fixed/", HTTP_ORIGIN="https://evil.example")),
        (
            "preflight",
            lambda: client.options(
                "/fixed/",
                HTTP_ORIGIN="https://app.example",
                HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
            ),
        ),
    ]
    for name, ask in requests:
        response = ask()
        if response.streaming:
            chunks = iter(response.streaming_content)
            first = next(chunks).decode()
            subscribed = {
                channel: get_channel(channel).subscriber_count for channel in ("news", "sport")
            }
            response.close()
            answers[name] = [response.status_code, first, subscribed]
        else:
            answers[name] = [response.status_code, response.content.decode()]
        answers[name].append(response.get("Content-Type"))
        answers[name].append(response.get("Access-Control-Allow-Origin"))
    answers["after"] = {
        channel: get_channel(channel).subscriber_count for channel in ("news", "sport")
    }
    print(json.dumps(answers))


if __name__ == "__main__":
    if sys.argv[1] == "checks":
        checks(sys.argv[2])
    elif sys.argv[1] == "views":
        views()
    else:
        on_commit()
