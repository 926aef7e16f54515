"""The Django example in headless Chromium: log in, notifications, resume, revocation.

The page is the example's own (``examples/django_notifications``): Chromium logs in
through Django's login form, and its ``EventSource`` carries the session cookie through
Django's middleware to the stream view. The database is a real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _browser import wait_for_js
from _django import admin_action, example_env, gunicorn_example, log_in, manage, notify
from _django import prepare_example as prepare
from _postgres import PostgresServer
from _servers import RedisServer
from conftest import StartServer
from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django]

RECEIVED = "window.received.map(note => note.text)"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the module."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def log_in_page(page: Page, base_url: str, username: str) -> None:
    """Log in through the form, as a person would, and wait for the stream to be live."""
    page.goto(base_url + "/")  # redirected to the login form
    page.fill("#id_username", username)
    page.fill("#id_password", "wsgisse")
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    wait_for_js(page, "document.getElementById('status').textContent === 'live'")


def send_from_page(page: Page, message: str, to: str) -> None:
    """Send a notification with the page's own form."""
    page.fill("input[name=message]", message)
    page.select_option("select[name=to]", to)
    page.click("#send button")


def test_in_chromium_a_user_sees_own_and_broadcast_notifications_and_resumes_exactly(
    postgres: PostgresServer,
    redis_server: RedisServer,
    start_server: StartServer,
    browser_page: Page,
) -> None:
    env = example_env(postgres.url, redis_server.url)
    prepare(env)
    server = start_server(gunicorn_example(env, workers=2))
    page = browser_page
    log_in_page(page, server.url, "alice")
    send_from_page(page, "for me", "alice")
    wait_for_js(page, "window.received.length === 1", show=RECEIVED)
    bob = log_in(server.url, "bob")
    notify(bob, server.url, "for bob", to="bob")
    notify(bob, server.url, "for all")
    wait_for_js(page, "window.received.length >= 2", show=RECEIVED)
    assert page.evaluate(RECEIVED) == ["for me", "for all"]
    assert page.evaluate("window.received[0].from") == "alice"

    # The server stops (its streams get the farewell); events are sent meanwhile, from
    # the shell; the browser comes back by itself with Last-Event-ID.
    server.stop()
    manage(env, "notify", "missed, for all")
    manage(env, "notify", "missed, for bob", "--to", "bob")
    manage(env, "notify", "missed, for alice", "--to", "alice")
    server.start()
    wait_for_js(page, "window.received.length >= 4", timeout=30, show=RECEIVED)
    notify(bob, server.url, "live again")
    wait_for_js(page, "window.received.length >= 5", show=RECEIVED)
    assert page.evaluate(RECEIVED) == [
        "for me",
        "for all",
        "missed, for all",
        "missed, for alice",
        "live again",
    ]


def test_in_chromium_a_revoked_user_gets_wsgisse_end_and_the_page_stops(
    postgres: PostgresServer, start_server: StartServer, browser_page: Page
) -> None:
    env = example_env(postgres.url)  # memory backend: one worker holds every stream
    prepare(env)
    server = start_server(gunicorn_example(env, workers=1))
    page = browser_page
    log_in_page(page, server.url, "alice")
    admin = log_in(server.url, "admin")
    with_pk = admin.get(server.url + "/admin/auth/user/?q=alice", timeout=10).text
    pk = int(with_pk.split('name="_selected_action" value="')[1].split('"')[0])
    assert "1 stream(s) ended." in admin_action(admin, server.url, "revoke_streams", pk)
    wait_for_js(page, "window.revoked === true")
    assert page.evaluate("document.getElementById('status').textContent") == "revoked"
    assert page.evaluate("source.readyState") == 2  # closed: it never comes back
