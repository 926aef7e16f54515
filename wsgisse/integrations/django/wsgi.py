"""``get_wsgi_application()`` for ``wsgi.py``: Django's, made known to wsgisse's fast path.

::

    # myproject/wsgi.py
    import os

    from wsgisse.integrations.django.wsgi import get_wsgi_application

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")
    application = get_wsgi_application()

Under gunicorn's and gevent's own servers a publish can write a new event to every
waiting client's socket from one loop (the fast path), but only once wsgisse has found
the server behind the response and proven that the bytes reach it unchanged. Django's
``WSGIHandler`` keeps the server's ``start_response`` to itself; this wrapper notes it
at the entry, as the Flask and Bottle integrations do. Without it, streams take the
ordinary path, which is correct under any server and middleware, only slower at fan-out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.wsgi import get_wsgi_application as django_wsgi_application

from wsgisse._wsgi import recording_start_response

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["get_wsgi_application"]


def get_wsgi_application() -> WSGIApplication:
    """Django's WSGI application, noting the server's ``start_response`` for the fast path.

    It sets Django up (``django.setup()``) exactly as Django's own function does.
    """
    return recording_start_response(django_wsgi_application())
