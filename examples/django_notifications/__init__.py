"""Notifications for logged-in users, in Django: your own, and everybody's.

Each user's page streams the ``notifications`` channel through Django's middleware: a
notification sent to everyone reaches every logged-in user, one sent to a user reaches
only that user's streams (an *audience*), and an admin action ("Revoke event streams")
deactivates users and ends their open streams at once. It also shows
``send_event_on_commit`` (the ``notify`` view publishes only once its transaction
commits), and ``manage.py notify`` publishes from outside any request.

Serve it with gunicorn's gevent workers (``examples/`` on the path)::

    gunicorn -k gevent --chdir examples 'django_notifications:create_app()'

or with Django's own server::

    python examples/django_notifications/manage.py runserver

``create_app()`` migrates the database and makes the users ``alice``, ``bob`` and the
superuser ``admin`` (password ``wsgisse`` for all three; a demo, not a deployment). The
database is SQLite in the temporary folder unless ``$EXAMPLE_DATABASE`` names a
PostgreSQL one (``postgres://user@host:port/name``); ``$EXAMPLE_REDIS_URL`` switches to
the Redis backend, which every gunicorn worker and ``manage.py notify`` share.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: The demo users, and the password of each.
USERS = ("alice", "bob")
ADMIN = "admin"
PASSWORD = "wsgisse"  # noqa: S105 - the demo's published password


def setup() -> None:
    """Point Django at this example's settings and set it up (idempotent)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_notifications.settings")
    import django  # noqa: PLC0415

    django.setup()


def prepare() -> None:
    """Migrate the database and make (or reactivate) the demo users."""
    setup()
    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.core.management import call_command  # noqa: PLC0415

    call_command("migrate", interactive=False, verbosity=0)
    for name in (*USERS, ADMIN):
        user, created = User.objects.get_or_create(username=name)
        if created:
            user.set_password(PASSWORD)
        user.is_active = True
        user.is_staff = user.is_superuser = name == ADMIN
        user.save()


def create_app(*, prepare_database: bool = True) -> WSGIApplication:
    """The example's WSGI application (and, by default, its database made ready)."""
    setup()
    if prepare_database:
        prepare()
    # Django's handler, noted for wsgisse's fast path (see wsgisse.integrations.django.wsgi).
    from wsgisse.integrations.django.wsgi import get_wsgi_application  # noqa: PLC0415

    return get_wsgi_application()
