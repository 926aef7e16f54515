"""The example's ``WSGI_APPLICATION``: what ``runserver`` serves (so may gunicorn).

Unlike :func:`django_notifications.create_app`, it does not prepare the database: run
``manage.py migrate`` first.
"""

from __future__ import annotations

import os

from wsgisse.integrations.django.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_notifications.settings")
application = get_wsgi_application()
