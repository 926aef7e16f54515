"""Helpers for the Django tests: the example project served, and its users logged in.

The example (``examples/django_notifications``) runs against a real PostgreSQL
(``_postgres.PostgresServer``), under gunicorn's gevent workers or ``manage.py
runserver``; a user logs in through Django's own login form, as a browser does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import requests
from _servers import REPO_ROOT, ServerProcess, free_port, gunicorn_gevent, python_env

__all__ = [
    "EXAMPLE",
    "EXAMPLES_DIR",
    "PASSWORD",
    "admin_action",
    "cookie_header",
    "copy_example",
    "example_env",
    "gunicorn_example",
    "log_in",
    "manage",
    "notify",
    "prepare_example",
    "runserver",
]

EXAMPLES_DIR: Final = REPO_ROOT / "examples"
EXAMPLE: Final = EXAMPLES_DIR / "django_notifications"
PASSWORD: Final = "wsgisse"  # noqa: S105 - the example's published demo password
#: Short, so that a browser comes back quickly after a server restart.
RETRY_MS: Final = 300

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def example_env(database_url: str, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """The example's environment variables: its database, and Redis if given."""
    env = {"EXAMPLE_DATABASE": database_url, "EXAMPLE_RETRY": str(RETRY_MS), **extra}
    if redis_url is not None:
        env["EXAMPLE_REDIS_URL"] = redis_url
    return env


def manage(
    env: Mapping[str, str], *args: str, example_dir: Path = EXAMPLE, timeout: float = 60
) -> str:
    """Run ``manage.py ARGS`` of the example; return its output.

    Raises:
        subprocess.CalledProcessError: the command failed (its output is in the error).
    """
    done = subprocess.run(
        [sys.executable, str(example_dir / "manage.py"), *args],
        env=python_env(env=env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise subprocess.CalledProcessError(
            done.returncode, done.args, done.stdout, done.stderr + done.stdout
        )
    return done.stdout


def prepare_example(env: Mapping[str, str]) -> None:
    """Migrate the example's database and make (or reactivate) its users, once per server."""
    code = "import django_notifications as example; example.prepare()"
    subprocess.run(
        [sys.executable, "-c", code],
        env=python_env([EXAMPLES_DIR], env),
        check=True,
        capture_output=True,
        timeout=120,
    )


def gunicorn_example(env: Mapping[str, str], workers: int = 2) -> ServerProcess:
    """The example under gunicorn -k gevent (database already prepared), not started yet."""
    return gunicorn_gevent(
        "django_notifications:create_app(prepare_database=False)",
        workers=workers,
        pythonpath=[EXAMPLES_DIR],
        env=env,
    )


def copy_example(folder: Path) -> Path:
    """A copy of the example package in ``folder``, whose files a test may touch."""
    target = folder / "django_notifications"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def runserver(example_dir: Path, env: Mapping[str, str]) -> ServerProcess:
    """``manage.py runserver`` (threaded, autoreloading) of the example in ``example_dir``."""
    port = free_port()
    argv = [sys.executable, str(example_dir / "manage.py"), "runserver", f"127.0.0.1:{port}"]
    return ServerProcess(
        argv, port=port, name="runserver", env=python_env(env=env), cwd=example_dir
    )


def log_in(base_url: str, username: str) -> requests.Session:
    """Log ``username`` in through the login form; return the session holding its cookies.

    Raises:
        AssertionError: the form did not log the user in.
    """
    session = requests.Session()
    page = session.get(f"{base_url}/accounts/login/", timeout=10)
    match = _CSRF_INPUT.search(page.text)
    assert match is not None, page.text
    answer = session.post(
        f"{base_url}/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": match[1]},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text
    assert "sessionid" in session.cookies
    return session


def cookie_header(session: requests.Session) -> dict[str, str]:
    """The ``Cookie`` header of ``session``, for a stream opened with ``open_sse``."""
    cookies = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    return {"Cookie": cookies}


def notify(
    session: requests.Session, base_url: str, message: str, to: str = "everyone"
) -> requests.Response:
    """POST a notification as the session's user, with its CSRF token."""
    return session.post(
        f"{base_url}/notify",
        data={"message": message, "to": to},
        headers={"X-CSRFToken": session.cookies["csrftoken"]},
        timeout=10,
    )


def admin_action(session: requests.Session, base_url: str, action: str, user_pk: int) -> str:
    """Run an admin action of the user list on one user, as the admin would; return the page."""
    page = session.get(f"{base_url}/admin/auth/user/", timeout=10)
    match = _CSRF_INPUT.search(page.text)
    assert match is not None, page.text
    answer = session.post(
        f"{base_url}/admin/auth/user/",
        data={
            "action": action,
            "_selected_action": str(user_pk),
            "csrfmiddlewaretoken": match[1],
            "index": "0",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.text
