"""Every example in one WSGI app, each under its own prefix, with an index page at ``/``.

``/clock/``, ``/notifications/``, ``/monitor/`` and ``/tokens/`` are the apps of
``clock.py``, ``notifications.py``, ``monitor.py`` and ``tokens.py``, and ``/django/`` the
Django project ``django_notifications/`` (on a SQLite database of its own, in a temporary
folder), unchanged: each sees its prefix in ``SCRIPT_NAME``, and its page uses relative
URLs (Django's own ``reverse()`` adds the prefix). Run it (this is what
``make demo`` does), and open http://127.0.0.1:8000 (``$HOST`` and ``$PORT`` override)::

    python examples/demo.py

It serves with gevent's ``WSGIServer`` when gevent is installed, after monkey-patching the
standard library (first thing, and only when run as a script: importing this module
patches nothing); otherwise with Werkzeug's threaded development server. With gunicorn::

    gunicorn -k gevent --chdir examples 'demo:create_app()'
"""

from __future__ import annotations

if __name__ == "__main__":
    # First of all: gevent must patch the standard library before anything imports it.
    try:
        from gevent import monkey
    except ImportError:
        monkey = None  # Werkzeug serves instead, below.
    else:
        monkey.patch_all()

import atexit
import contextlib
import html
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import clock
import django_notifications
import monitor
import notifications
import tokens

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

EXAMPLES = {
    "clock": "The time in UTC, New York and Los Angeles, every second (plain WSGI).",
    "notifications": "Post a message; every open tab receives it (Flask).",
    "monitor": "The server's CPU and memory, every second (Bottle; Linux).",
    "tokens": "A reply streamed word by word, with a Stop button (Flask).",
    "django": "Log in; your own and everybody's notifications; revoke in the admin (Django).",
}


def index_page() -> bytes:
    """The index page: a link to each example."""
    items = "\n".join(
        f'  <li><a href="{name}/">{name}</a>: {html.escape(text)}</li>'
        for name, text in EXAMPLES.items()
    )
    return f"""\
<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>wsgisse examples</title>
<style>body {{ font: 1.2rem system-ui, sans-serif; margin: 2rem; }}</style>
<h1>wsgisse examples</h1>
<ul>
{items}
</ul>
""".encode()


def mount(apps: Mapping[str, WSGIApplication], index: bytes) -> WSGIApplication:
    """One WSGI app that hands ``/NAME/...`` to ``apps[NAME]``, and serves ``index`` at ``/``.

    The prefix moves from ``PATH_INFO`` to ``SCRIPT_NAME``, as PEP 3333 has it; ``/NAME``
    redirects to ``/NAME/``, so that the pages' relative URLs resolve under the prefix.
    """

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        name, slash, rest = path[1:].partition("/")
        app = apps.get(name)
        if app is not None and slash:
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
            environ["PATH_INFO"] = "/" + rest
            return app(environ, start_response)
        if app is not None:
            start_response(
                "308 Permanent Redirect", [("Location", f"{name}/"), ("Content-Length", "0")]
            )
            return [b""]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [index]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found\n"]

    return dispatch


def django_app() -> WSGIApplication:
    """The Django example, on a database of its own that is removed when the process exits."""
    if "EXAMPLE_DATABASE" not in os.environ and "EXAMPLE_SQLITE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="wsgisse-demo-django-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["EXAMPLE_SQLITE"] = os.path.join(folder, "db.sqlite3")
    return django_notifications.create_app()


def create_app() -> WSGIApplication:
    """Make every example app (starting their publishers) and mount them together."""
    apps: dict[str, WSGIApplication] = {
        "clock": clock.create_app(),
        "notifications": notifications.create_app(),
        "monitor": monitor.create_app(),
        "tokens": tokens.create_app(),
        "django": django_app(),
    }
    return mount(apps, index_page())


if __name__ == "__main__":
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    app = create_app()
    print(f"wsgisse examples on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    if monkey is not None:
        from gevent.pywsgi import WSGIServer

        with contextlib.suppress(KeyboardInterrupt):
            WSGIServer((host, port), app).serve_forever()
    else:
        from werkzeug.serving import run_simple

        run_simple(host, port, app, threaded=True)
