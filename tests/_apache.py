"""Apache with mod_wsgi, configured from the recipe in deploy/apache/, for the live tests.

Debian's ``apache2`` runs in the foreground (``-DFOREGROUND``) under a ServerRoot of its
own (a temporary folder holding its configuration, pid file, logs and mod_wsgi's
sockets), on 127.0.0.1 and a free port, with TLS and HTTP/2; it is ready once a TLS
handshake on its port succeeds, and stopped by its own pid.

The app runs in a mod_wsgi daemon process, in the Python that Debian's
``libapache2-mod-wsgi-py3`` was built for (``/usr/bin/python3``), with this repository on
its ``python-path``: wsgisse needs nothing beyond the standard library, so the code
under test is the worktree's. (The test virtualenv's Python may be another build; a
mod_wsgi built for it would need it readable by Apache's unprivileged user.)

The configuration is the recipe's own files with their ``{{PLACEHOLDERS}}`` filled in
(and, for a test that needs it, a named line replaced), as in ``_proxies.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from _proxies import DEPLOY_DIR, Certificate, negotiated_protocol, render
from _servers import HOST, REPO_ROOT, ServerProcess, find_program, free_port

__all__ = ["MODULES_DIR", "ApacheServer", "apache_available", "apache_server"]

MODULES_DIR: Final = Path("/usr/lib/apache2/modules")
WSGI_MODULE: Final = MODULES_DIR / "mod_wsgi.so"
# Apache's children and mod_wsgi's daemon run as this unprivileged user when Apache is
# started as root (mod_wsgi refuses to run a daemon as root).
_USER, _GROUP = "nobody", "nogroup"

_SCRIPT = '''\
"""The WSGI script file mod_wsgi loads: the app named by the test."""
from wsgisse.integrations.mod_wsgi import setup
setup()
from {module} import {attr} as application  # noqa: F401
'''


def apache_available() -> str | None:
    """Why Apache with mod_wsgi cannot run here, or ``None`` if it can."""
    if shutil.which("apache2") is None and not Path("/usr/sbin/apache2").exists():
        return "apache2 is not installed (apt-get install apache2)"
    if not WSGI_MODULE.exists():
        return "mod_wsgi is not installed (apt-get install libapache2-mod-wsgi-py3)"
    return None


def _ready(server: ServerProcess) -> bool:
    return negotiated_protocol(server.port) is not None


class ApacheServer(ServerProcess):
    """Apache configured by deploy/apache/httpd.conf and wsgisse.conf (see the module)."""

    def __init__(
        self,
        app_ref: str,
        certificate: Certificate,
        *,
        port: int | None = None,
        edits: Mapping[str, str] | None = None,
        server_edits: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.app_ref = app_ref
        self.certificate = certificate
        self.edits = dict(edits or {})
        self.server_edits = dict(server_edits or {})
        self.folder: Path | None = None
        port = free_port() if port is None else port
        environment = {**os.environ, **(env or {})}
        super().__init__(
            ["apache2"], port=port, name="apache", scheme="https", ready=_ready, env=environment
        )

    def _configure(self, folder: Path) -> list[str]:
        module, _, attr = self.app_ref.partition(":")
        for sub in ("logs", "wsgi", "app"):
            (folder / sub).mkdir(mode=0o755)
        script = folder / "app" / "app.wsgi"
        script.write_text(_SCRIPT.format(module=module, attr=attr))
        (folder / "httpd.conf").write_text(
            render(
                DEPLOY_DIR / "apache" / "httpd.conf",
                {
                    "PREFIX": str(folder),
                    "USER": _USER,
                    "GROUP": _GROUP,
                    "MODULES": str(MODULES_DIR),
                    "WSGI_MODULE": str(WSGI_MODULE),
                },
                self.server_edits,
            )
        )
        (folder / "wsgisse.conf").write_text(
            render(
                DEPLOY_DIR / "apache" / "wsgisse.conf",
                {
                    "LISTEN": f"{HOST}:{self.port}",
                    "SERVER_NAME": HOST,
                    "CERTIFICATE": str(self.certificate.cert),
                    "CERTIFICATE_KEY": str(self.certificate.key),
                    "PYTHON_PATH": str(REPO_ROOT),
                    "SOCKET_PREFIX": str(folder / "wsgi" / "sock"),
                    "WSGI_SCRIPT": str(script),
                    "WSGI_SCRIPT_DIR": str(script.parent),
                },
                self.edits,
            )
        )
        return [
            find_program("apache2"),
            "-d",
            str(folder),
            "-f",
            str(folder / "httpd.conf"),
            "-DFOREGROUND",
        ]

    def start(self) -> ApacheServer:
        if self.folder is None and not self._closed:
            self.folder = Path(tempfile.mkdtemp(prefix="wsgisse-apache-"))
            # The unprivileged children must reach the script and mod_wsgi's sockets.
            self.folder.chmod(0o755)
            self.argv = self._configure(self.folder)
        super().start()
        return self

    def __enter__(self) -> ApacheServer:
        return self.start()

    def graceful_restart(self) -> None:
        """``apachectl graceful``: SIGUSR1 to the parent; new children, new daemons."""
        os.kill(self.pid, signal.SIGUSR1)

    def graceful_stop(self) -> None:
        """``apachectl graceful-stop``: SIGWINCH to the parent."""
        os.kill(self.pid, signal.SIGWINCH)

    def error_log(self) -> str:
        """Apache's error log (mod_wsgi's messages and the app's stderr are in it)."""
        if self.folder is None:
            return ""
        with contextlib.suppress(FileNotFoundError):
            return (self.folder / "logs" / "error.log").read_text(errors="replace")
        return ""

    def output(self) -> str:
        """What Apache wrote to stderr, and its error log."""
        return super().output() + f"--- logs/error.log\n{self.error_log()}"

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None


def apache_server(
    app_ref: str,
    certificate: Certificate,
    *,
    edits: Mapping[str, str] | None = None,
    server_edits: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> ApacheServer:
    """An :class:`ApacheServer` serving ``app_ref`` (``module:attr``), not started yet.

    ``edits`` replace lines of the recipe (wsgisse.conf), ``server_edits`` of httpd.conf.
    """
    return ApacheServer(app_ref, certificate, edits=edits, server_edits=server_edits, env=env)
