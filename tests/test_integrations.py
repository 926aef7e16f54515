"""One contract for every framework integration, in process under wsgiref's validator.

Each integration (the Flask extension, the Bottle plugin, the Django app) serves the same
stream route
with the same behaviour; the tests below are written once and run against each, so
that an integration cannot drift from the others. What is particular to one framework
(Flask's config keys and app contexts, Bottle's ``sse=True`` routes) stays in its own
test file.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from _examples import HOP_BY_HOP, RETRY, create_bottle_app, create_flask_app

from wsgisse import Channel, ServerSentEvent
from wsgisse.integrations.bottle import SSEPlugin
from wsgisse.integrations.flask import SSE
from wsgisse.testing import SSETestClient, wait_until


@dataclass
class Integration:
    """How the contract reaches one framework's app: made, its channel, a publish."""

    make_app: Callable[[], Any]
    channel: Callable[[Any], Channel]
    publish: Callable[..., ServerSentEvent]


def _bottle_plugin(app: Any) -> SSEPlugin:
    (plugin,) = [p for p in app.plugins if isinstance(p, SSEPlugin)]
    return plugin


def _flask_publish(app: Any, data: object, **fields: Any) -> ServerSentEvent:
    with app.app_context():
        return SSE().publish(data, **fields)  # a second object reaches the app's channel


_django_apps = itertools.count(1)


def _make_django_app() -> Any:
    """Django's WSGI app, configured once per process, serving a fresh channel each time."""
    import django  # noqa: PLC0415 - only the Django leg needs it
    from django.conf import settings  # noqa: PLC0415

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="contract",  # noqa: S106 - a test value
            ALLOWED_HOSTS=["*"],
            INSTALLED_APPS=["wsgisse.integrations.django"],
            MIDDLEWARE=[],
            ROOT_URLCONF="django_contract_urls",
            DATABASES={},
            WSGISSE={"HEARTBEAT": 15.0, "RETRY": RETRY},
        )
        django.setup()
    import django_contract_urls  # noqa: PLC0415 - needs the settings

    from wsgisse.integrations.django.wsgi import get_wsgi_application  # noqa: PLC0415

    name = f"contract-{next(_django_apps)}"
    django_contract_urls.CHANNEL["channels"][:] = [name]
    app = get_wsgi_application()
    app.channel_name = name  # type: ignore[attr-defined]
    return app


def _django_channel(app: Any) -> Channel:
    from wsgisse.integrations.django import get_channel  # noqa: PLC0415

    return get_channel(app.channel_name)


def _django_publish(app: Any, data: object, **fields: Any) -> ServerSentEvent:
    from wsgisse.integrations.django import send_event  # noqa: PLC0415

    return send_event(app.channel_name, data, **fields)


INTEGRATIONS = {
    "django": Integration(
        make_app=_make_django_app, channel=_django_channel, publish=_django_publish
    ),
    "flask": Integration(
        make_app=create_flask_app,
        channel=lambda app: app.extensions["wsgisse"].channel,
        publish=_flask_publish,
    ),
    "bottle": Integration(
        make_app=create_bottle_app,
        channel=lambda app: _bottle_plugin(app).channel,
        publish=lambda app, data, **fields: _bottle_plugin(app).publish(data, **fields),
    ),
}


@pytest.fixture(params=sorted(INTEGRATIONS))
def integration(request: pytest.FixtureRequest) -> Integration:
    return INTEGRATIONS[request.param]


def client(app: Any) -> SSETestClient:
    return SSETestClient(app)  # validator-wrapped


def test_the_stream_route_has_the_event_stream_headers_and_no_hop_by_hop_header(
    integration: Integration,
) -> None:
    with client(integration.make_app()).stream("/events") as response:
        assert response.status == "200 OK"
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-accel-buffering"] == "no"
        assert not HOP_BY_HOP & set(response.headers)
        assert response.next_comment().text == "wsgisse"
        assert response.parser.retry == RETRY


def test_published_events_arrive_with_their_name_id_and_unicode_data_intact(
    integration: Integration,
) -> None:
    app = integration.make_app()
    with client(app).stream("/events") as response:
        wait_until(lambda: integration.channel(app).subscriber_count == 1)
        sent = integration.publish(app, "héllo\nwörld 🎉", event="note")
        event = response.next_event()
    assert (event.type, event.data, event.last_event_id) == ("note", "héllo\nwörld 🎉", sent.id)


def test_a_reconnecting_client_is_replayed_exactly_what_followed_its_last_event_id(
    integration: Integration,
) -> None:
    app = integration.make_app()
    first = integration.publish(app, "one")
    integration.publish(app, "two")
    integration.publish(app, "three")
    with client(app).stream("/events", headers={"Last-Event-ID": first.id or ""}) as response:
        assert [e.data for e in response.events(2)] == ["two", "three"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_on_the_stream_route_get_405(integration: Integration, method: str) -> None:
    with client(integration.make_app()).stream("/events", method=method) as response:
        assert response.status.startswith("405")
        assert "GET" in response.headers["allow"]


def test_a_malformed_last_event_id_is_answered_400(integration: Integration) -> None:
    app = integration.make_app()
    with client(app).stream("/events", headers={"Last-Event-ID": "x" * 2000}) as response:
        assert response.status.startswith("400")
        assert response.headers["content-type"].startswith("text/plain")


def test_a_closed_channel_is_answered_204_so_that_browsers_stop_reconnecting(
    integration: Integration,
) -> None:
    app = integration.make_app()
    integration.channel(app).close()
    with client(app).stream("/events") as response:
        assert response.status.startswith("204")


def test_head_answers_the_stream_headers_without_subscribing(integration: Integration) -> None:
    app = integration.make_app()
    with client(app).stream("/events", method="HEAD") as response:
        assert response.status == "200 OK"
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.read_to_end() == []
        assert response.body == b""
    assert integration.channel(app).subscriber_count == 0


def test_disconnecting_brings_the_subscriber_count_back_to_zero(integration: Integration) -> None:
    app = integration.make_app()
    channel = integration.channel(app)
    with client(app).stream("/events") as response:
        response.next_comment()
        assert channel.subscriber_count == 1
    wait_until(lambda: channel.subscriber_count == 0, timeout=5)


def test_publish_takes_an_audience_in_every_integration(integration: Integration) -> None:
    app = integration.make_app()
    with client(app).stream("/events") as response:  # anonymous: never in an audience
        wait_until(lambda: integration.channel(app).subscriber_count == 1)
        integration.publish(app, "for alice", audience=["alice"])
        integration.publish(app, "for everybody")
        assert response.next_event().data == "for everybody"
