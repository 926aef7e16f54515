"""Settings of the Django example (see the package's documentation for the variables)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent

# A demo: the key is public, as are the users' passwords.
SECRET_KEY = "wsgisse-example-not-secret"  # noqa: S105
DEBUG = os.environ.get("EXAMPLE_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "wsgisse.integrations.django",
    "django_notifications",
]

MIDDLEWARE = [
    # Outermost, as Django advises: it compresses every page, and passes the stream by.
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "django_notifications.urls"
# Django's handler, noted for wsgisse's fast path (see wsgisse.integrations.django.wsgi).
WSGI_APPLICATION = "django_notifications.wsgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
STATIC_URL = "static/"
USE_TZ = True

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict[str, object]:
    url = os.environ.get("EXAMPLE_DATABASE")
    if not url:
        path = os.environ.get(
            "EXAMPLE_SQLITE", str(Path(tempfile.gettempdir()) / "wsgisse-django-example.sqlite3")
        )
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

WSGISSE: dict[str, object] = {
    "CHANNELS": ["notifications"],
    "CHANNEL_MANAGER": "django_notifications.channels.Notifications",
    "HEARTBEAT": float(os.environ.get("EXAMPLE_HEARTBEAT", "15")),
    "RETRY": int(os.environ.get("EXAMPLE_RETRY", "3000")),
}
if os.environ.get("EXAMPLE_REDIS_URL"):
    WSGISSE.update(BACKEND="redis", REDIS_URL=os.environ["EXAMPLE_REDIS_URL"])
